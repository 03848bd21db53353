"""MagicInfiniteModelLoader (DiT + audio adapter + LoRAs -> MI_MODEL) and MagicInfiniteLoraSelect."""

from dataclasses import dataclass

from magicinfinite_core.checkpoints import COMPUTE_DTYPES, STORAGE_DTYPES, LoadedModel, LoraSpec, load_model
from magicinfinite_core.errors import InputError
from magicinfinite_core.latents import VideoVAE
from magicinfinite_core.mini.bundle import DIT_FILE, EMBEDDED_BUNDLE_NAME, load_bundle
from magicinfinite_core.mini.text_encoder import SmallTextEncoder

from .host import list_models, model_path

NO_ADAPTER = "none"


@dataclass(frozen=True, eq=False)
class MagicInfiniteModel:
    """The MI_MODEL value: the loaded DiT and the parts a model bundle brings with it (the embedded
    MagicInfinite-Mini brings its VAE and text encoder; a Wan2.1 checkpoint brings neither, the host's
    VAELoader and CLIPLoader provide them)."""

    dit: LoadedModel
    vae: VideoVAE | None = None
    text_encoder: SmallTextEncoder | None = None


def _load_embedded(adapter_name: str, compute_dtype, storage_dtype, loras) -> MagicInfiniteModel:
    if adapter_name != NO_ADAPTER:
        raise InputError(
            f"adapter_name: {EMBEDDED_BUNDLE_NAME} carries its own audio adapter, so {adapter_name!r} cannot "
            f"be added to it; choose '{NO_ADAPTER}', or a Wan2.1 DiT for that adapter."
        )
    bundle = load_bundle(compute_dtype=compute_dtype)
    dit = bundle.model
    if loras or storage_dtype is not None:  # the bundle loads its DiT plainly; reload it with these choices
        dit = load_model(bundle.path / DIT_FILE, loras=loras, compute_dtype=compute_dtype,
                         storage_dtype=storage_dtype)
    return MagicInfiniteModel(dit, vae=bundle.vae, text_encoder=bundle.text_encoder)


class MagicInfiniteModelLoader:
    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "dit_name": ([EMBEDDED_BUNDLE_NAME, *list_models("diffusion_models")], {"tooltip": (
                    "Wan2.1 DiT from models/diffusion_models (safetensors: Wan native, ComfyUI repackaged "
                    "bf16/fp16/fp8_e4m3fn/fp8_scaled, or shards; for a model folder with config.json such "
                    "as SoulX-FlashTalk-14B, pick any of its shards). Size, t2v/i2v and a built-in audio "
                    f"adapter are read from the tensors. {EMBEDDED_BUNDLE_NAME}: the small stand-in model "
                    "shipped with the pack (no download), with its own adapter, VAE and text encoder.")}),
                "adapter_name": ([NO_ADAPTER, *list_models("model_patches")], {
                    "default": NO_ADAPTER, "tooltip": (
                    "MultiTalk / InfiniteTalk audio adapter from models/model_patches (the file ComfyUI's "
                    "ModelPatchLoader uses), loaded beside the DiT. 'none' when the DiT already holds one "
                    "or for a silent model.")}),
                "compute_dtype": (list(COMPUTE_DTYPES), {"default": "bf16", "tooltip": (
                    "Precision the layers compute in. bf16 for recent GPUs, fp16 for older ones, fp32 for "
                    "CPU checks.")}),
                "weight_dtype": (list(STORAGE_DTYPES), {"default": "default", "tooltip": (
                    "Precision the linear weights are kept in. 'default' keeps the file's; fp8_e4m3fn "
                    "halves the memory of bf16 (a 14B model in about 14 GB) and is cast per layer at "
                    "compute; norms and biases stay in higher precision.")}),
            },
            "optional": {
                "loras": ("MI_LORAS", {"tooltip": (
                    "LoRA chain from MagicInfinite LoRA Select nodes, merged with their strengths (kept "
                    "beside fp8 weights so fp8 rounding does not swallow them).")}),
            },
        }

    RETURN_TYPES = ("MI_MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The DiT with its audio adapter and LoRAs (and, for the embedded model, its VAE and "
                       "text encoder), for the MagicInfinite sampler and text conditioning.",)
    FUNCTION = "load"
    CATEGORY = "MagicInfinite/loaders"
    DESCRIPTION = ("Loads a Wan2.1 DiT and a MultiTalk/InfiniteTalk audio adapter (safetensors only) onto "
                   "the CPU; the sampler moves it to the GPU.")

    def load(self, dit_name: str, adapter_name: str, compute_dtype: str, weight_dtype: str, loras=()):
        if dit_name == EMBEDDED_BUNDLE_NAME:
            return (_load_embedded(adapter_name, COMPUTE_DTYPES[compute_dtype], STORAGE_DTYPES[weight_dtype],
                                   tuple(loras or ())),)
        adapter = None if adapter_name == NO_ADAPTER else model_path("model_patches", adapter_name)
        model = load_model(
            model_path("diffusion_models", dit_name),
            adapter_path=adapter,
            loras=tuple(loras or ()),
            compute_dtype=COMPUTE_DTYPES[compute_dtype],
            storage_dtype=STORAGE_DTYPES[weight_dtype],
        )
        return (MagicInfiniteModel(model),)


class MagicInfiniteLoraSelect:
    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "lora_name": (list_models("loras"), {"tooltip": (
                    "LoRA from models/loras (safetensors; ComfyUI, diffusers or kohya names), e.g. the "
                    "lightx2v 4-step distill LoRA.")}),
                "strength": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01, "tooltip": (
                    "Multiplier of the LoRA's change to the weights; 0 leaves the model as it is.")}),
            },
            "optional": {
                "previous": ("MI_LORAS", {"tooltip": (
                    "LoRAs chosen before this one; their changes add up.")}),
            },
        }

    RETURN_TYPES = ("MI_LORAS",)
    RETURN_NAMES = ("loras",)
    OUTPUT_TOOLTIPS = ("The LoRA chain so far, for the model loader or the next LoRA Select.",)
    FUNCTION = "select"
    CATEGORY = "MagicInfinite/loaders"
    DESCRIPTION = "Adds a LoRA and its strength to a chain applied by MagicInfinite Model Loader."

    def select(self, lora_name: str, strength: float, previous=()):
        return ((*(previous or ()), LoraSpec(str(model_path("loras", lora_name)), strength)),)


NODE_CLASS_MAPPINGS = {
    "MagicInfiniteModelLoader": MagicInfiniteModelLoader,
    "MagicInfiniteLoraSelect": MagicInfiniteLoraSelect,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "MagicInfiniteModelLoader": "MagicInfinite Model Loader",
    "MagicInfiniteLoraSelect": "MagicInfinite LoRA Select",
}
