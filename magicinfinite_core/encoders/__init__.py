"""The Wan2.1 parts a host normally provides (the VAE, the umT5 text encoder, the CLIP vision encoder), loaded
from the files ComfyUI users have, for the engine's own `render` command."""
