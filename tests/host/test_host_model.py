"""The sampler driving ComfyUI's own MODEL: parity with the MI_MODEL path through the real host's loaders.

Tiny files in the real key layouts go into a temporary models folder: a Wan2.1 i2v DiT (Wan native keys;
UNETLoader reads heads = dim / 128 and fixes freq_dim 256, text_dim 4096), an InfiniteTalk adapter
(ModelPatchLoader fixes 40 blocks, 12 x 768 features, 32 tokens, so the DiT has 40 blocks) and a LoRA in
ComfyUI's names. UNETLoader, ModelPatchLoader and LoraLoaderModelOnly load them; load_models_gpu moves them;
every model pass goes through the MODEL's apply_model with our audio block patches. The same files load
through MagicInfinite Model Loader's path. One window's latents (every step's x0 prediction) must agree.

Needs COMFYUI_DIR: a ComfyUI checkout (0.33) whose Python dependencies are installed (skipped when unset).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import make_tiny_model
from safetensors.torch import save_file

from magicinfinite_core.checkpoints import LoraSpec, load_model
from magicinfinite_core.checkpoints.layouts import is_adapter_key
from magicinfinite_core.errors import InputError
from magicinfinite_core.masks import Regions
from magicinfinite_core.models.config import AudioAdapterConfig, WanConfig
from magicinfinite_core.sampling import TextConditioning, sample_video
from tests.host.checkout import comfyui_dir, requires_comfyui
from tests.sampling.sampler_fixtures import make_audio, make_picture, make_settings, make_vae

pytestmark = requires_comfyui

TOLERANCE = 1e-4
CONFIG = WanConfig(
    dim=256, ffn_dim=256, num_heads=2, num_layers=40, model_type="i2v",
    audio=AudioAdapterConfig(intermediate_dim=16, context_tokens=32, token_dim=32),
)
SIZE = 64  # pixels: a 4 x 4 token grid
SETTINGS = {"width": SIZE, "height": SIZE, "window_frames": 5, "motion_frames": 1, "steps": 2, "seed": 3}
LORA_RANK = 4
OTHER_ADAPTER = "infinitetalk_tiny_other.safetensors"  # the same adapter, weights scaled by 1.01
NARROW_ADAPTER = "infinitetalk_tiny_128.safetensors"  # an adapter for a 128-wide DiT
T2V_FILE = "wan_tiny_t2v.safetensors"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """ComfyUI's loaders over a temporary models folder holding the tiny files."""
    checkout = comfyui_dir()
    # Appended: ComfyUI's top-level nodes.py must not shadow this pack's nodes/.
    sys.path.append(str(checkout))
    importlib.import_module("comfy.cli_args").args.cpu = True
    folder_paths = importlib.import_module("folder_paths")
    root = tmp_path_factory.mktemp("models")
    model = make_tiny_model(CONFIG, seed=5)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    files = {"diffusion_models": "wan_tiny_i2v.safetensors", "model_patches": "infinitetalk_tiny.safetensors",
             "loras": "lora_tiny.safetensors"}
    for folder in files:
        (root / folder).mkdir()
        folder_paths.add_model_folder_path(folder, str(root / folder), is_default=True)
    save_file({k: v for k, v in state.items() if not is_adapter_key(k)},
              str(root / "diffusion_models" / files["diffusion_models"]))
    save_file({k: v for k, v in state.items() if is_adapter_key(k)},
              str(root / "model_patches" / files["model_patches"]))
    save_file(lora_tensors(), str(root / "loras" / files["loras"]))
    adapter = {k: v for k, v in state.items() if is_adapter_key(k)}
    save_file({k: v * 1.01 for k, v in adapter.items()}, str(root / "model_patches" / OTHER_ADAPTER))
    save_file(narrowed(adapter), str(root / "model_patches" / NARROW_ADAPTER))
    t2v = make_tiny_model(WanConfig(dim=256, ffn_dim=256, num_heads=2, num_layers=2, model_type="t2v",
                                    in_dim=16, audio=None), seed=7)
    save_file({k: v.contiguous() for k, v in t2v.state_dict().items()},
              str(root / "diffusion_models" / T2V_FILE))
    spec = importlib.util.spec_from_file_location("comfyui_nodes", checkout / "nodes.py")
    comfy_nodes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(comfy_nodes)
    patch_nodes = importlib.import_module("comfy_extras.nodes_model_patch")
    return SimpleNamespace(
        root=root, files=files, nodes=comfy_nodes, patch_loader=patch_nodes.ModelPatchLoader(),
        model_patcher=importlib.import_module("comfy.model_patcher"),
        wan=comfy_nodes.UNETLoader().load_unet(files["diffusion_models"], "default")[0],
        patch=patch_nodes.ModelPatchLoader().load_model_patch(files["model_patches"])[0],
    )


def narrowed(adapter: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The adapter's blocks cut to a 128-wide DiT (the projection, which does not depend on it, kept)."""
    def cut(tensor: torch.Tensor) -> torch.Tensor:
        for axis, size in enumerate(tensor.shape):
            if size in (CONFIG.dim, 2 * CONFIG.dim):
                tensor = tensor.narrow(axis, 0, size // 2)
        return tensor.contiguous()

    return {k: v if k.startswith("audio_proj.") else cut(v) for k, v in adapter.items()}


def lora_tensors() -> dict[str, torch.Tensor]:
    """A LoRA on two of the DiT's linear layers (none of the adapter's), in ComfyUI's key names."""
    g = torch.Generator().manual_seed(11)
    tensors = {}
    for name in ("blocks.0.self_attn.q", "blocks.7.ffn.0"):
        out_features = CONFIG.ffn_dim if name.endswith("ffn.0") else CONFIG.dim
        key = f"diffusion_model.{name}"
        tensors[f"{key}.lora_down.weight"] = 0.3 * torch.randn(LORA_RANK, CONFIG.dim, generator=g)
        tensors[f"{key}.lora_up.weight"] = 0.3 * torch.randn(out_features, LORA_RANK, generator=g)
        tensors[f"{key}.alpha"] = torch.tensor(float(LORA_RANK))
    return tensors


def regions(speakers: int) -> Regions | None:
    """Side-by-side vertical strips, one per speaker (none for one speaker)."""
    if speakers == 1:
        return None
    masks = torch.zeros(speakers, SIZE, SIZE)
    edges = torch.linspace(0, SIZE, speakers + 1).round().long().tolist()
    for i in range(speakers):
        masks[i, :, edges[i]:edges[i + 1]] = 1
    return Regions(masks)


def text() -> TextConditioning:
    g = torch.Generator().manual_seed(4)
    return TextConditioning(((0.0, torch.randn(1, 512, CONFIG.text_dim, generator=g)),),
                            torch.randn(1, 512, CONFIG.text_dim, generator=g))


def latents(model, vae, speakers: int, **settings) -> list[torch.Tensor]:
    """Every step's x0 prediction of a one-window video."""
    steps: list[torch.Tensor] = []
    g = torch.Generator().manual_seed(6)
    audio = make_audio(5, speakers=speakers, config=CONFIG)
    sample_video(model, vae, make_picture(height=SIZE, width=SIZE), audio, text(),
                 make_settings(**{**SETTINGS, **settings}), regions=regions(speakers),
                 clip_tokens=torch.randn(1, 257, CONFIG.image_dim, generator=g),
                 callback=lambda step: steps.append(step.latent.float().cpu()))
    return steps


def relative_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


def load_mi_model(host, loras=()):
    """The same files through MagicInfinite Model Loader's path, computing in float32."""
    return load_model(host.root / "diffusion_models" / host.files["diffusion_models"],
                      adapter_path=host.root / "model_patches" / host.files["model_patches"],
                      loras=loras, compute_dtype=torch.float32).module


@pytest.fixture(scope="module")
def mi_model(host):
    return load_mi_model(host)


def host_latents(wan_model, model_patch, speakers: int, **settings) -> list[torch.Tensor]:
    from nodes.host_model import HostDenoiser

    denoiser = HostDenoiser(wan_model, model_patch)
    with denoiser.session():
        return latents(denoiser, make_vae(), speakers, **settings)


def assert_close(ours: list[torch.Tensor], theirs: list[torch.Tensor], label: str) -> None:
    assert len(ours) == len(theirs) >= 2
    for host_step, mi_step in zip(ours, theirs, strict=True):
        error = relative_error(host_step, mi_step)
        print(f"parity, {label}: max relative error {error:.2e}")
        assert error <= TOLERANCE


@pytest.mark.parametrize(("speakers", "settings"), [
    (1, {}),
    (2, {}),
    (3, {}),
    (2, {"solver": "euler", "text_cfg": 3.0, "audio_cfg": 2.0}),  # CFG: negative text and null audio passes
])
def test_one_window_through_the_host_model_equals_the_mi_model_path(host, mi_model, speakers, settings):
    theirs = latents(mi_model, make_vae(), speakers, **settings)
    ours = host_latents(host.wan, host.patch, speakers, **settings)
    assert_close(ours, theirs, f"{speakers} speaker(s) {settings}")


def test_a_lora_applies_alike_on_both_paths(host, mi_model):
    strength = 0.8
    lora_path = host.root / "loras" / host.files["loras"]
    loader = host.nodes.LoraLoaderModelOnly()
    patched = loader.load_lora_model_only(host.wan, host.files["loras"], strength)[0]
    theirs = latents(load_mi_model(host, (LoraSpec(str(lora_path), strength),)), make_vae(), 2)
    ours = host_latents(patched, host.patch, 2)
    assert_close(ours, theirs, "2 speakers with a LoRA")
    without = latents(mi_model, make_vae(), 2)
    assert relative_error(ours[-1], without[-1]) > 100 * TOLERANCE  # the LoRA changed the video


class CountingPatch:
    """A user's attention patch on the MODEL (attn1_patch): counts its calls, changes nothing."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.calls = 0

    def __call__(self, kwargs: dict) -> torch.Tensor:
        self.calls += 1
        return kwargs["x"]


def with_patch(model, patch):
    patched = model.clone()
    patched.set_model_attn1_patch(patch)
    return patched


def test_the_users_patches_run_in_every_block_of_every_pass(host):
    patch = CountingPatch("user")
    host_latents(with_patch(host.wan, patch), host.patch, 1)
    assert patch.calls == CONFIG.num_layers * SETTINGS["steps"]


def test_identity_covers_files_loras_strengths_patches_and_the_adapter(host):
    from nodes.host_model import HostDenoiser

    loader = host.nodes.LoraLoaderModelOnly()
    strong = loader.load_lora_model_only(host.wan, host.files["loras"], 0.8)[0]
    weak = loader.load_lora_model_only(host.wan, host.files["loras"], 0.5)[0]
    other_adapter = host.patch_loader.load_model_patch(OTHER_ADAPTER)[0]
    pairs = {
        "base": (host.wan, host.patch),
        "lora 0.8": (strong, host.patch),
        "lora 0.5": (weak, host.patch),
        "patch a": (with_patch(host.wan, CountingPatch("a")), host.patch),
        "patch b": (with_patch(host.wan, CountingPatch("b")), host.patch),
        "other adapter": (host.wan, other_adapter),
    }
    identities = {name: HostDenoiser(*pair).identity() for name, pair in pairs.items()}
    assert len(set(identities.values())) == len(pairs), identities
    # Stable: a clone is the same MODEL, and so is a MODEL after a render (ComfyUI patched its LoRA into
    # the loaded weights in place meanwhile).
    assert HostDenoiser(host.wan.clone(), host.patch).identity() == identities["base"]
    host_latents(strong, host.patch, 1)
    assert HostDenoiser(strong, host.patch).identity() == identities["lora 0.8"]
    assert HostDenoiser(host.wan, host.patch).identity() == identities["base"]


def test_a_model_that_is_not_wan21_i2v_is_refused(host):
    from nodes.host_model import HostDenoiser

    t2v = host.nodes.UNETLoader().load_unet(T2V_FILE, "default")[0]
    with pytest.raises(InputError, match=r"wan_model: expected a Wan2.1 image-to-video MODEL .* found WAN21 "
                                         r"\(t2v, 16 input channels\)"):
        HostDenoiser(t2v, host.patch)


def test_a_model_patch_that_is_not_an_audio_adapter_is_refused(host):
    from nodes.host_model import HostDenoiser

    other = host.model_patcher.ModelPatcher(torch.nn.Linear(2, 2), load_device=torch.device("cpu"),
                                            offload_device=torch.device("cpu"))
    with pytest.raises(InputError, match="model_patch: expected a MultiTalk/InfiniteTalk audio adapter .* "
                                         "found Linear"):
        HostDenoiser(host.wan, other)


def test_an_adapter_for_another_width_is_refused(host):
    from nodes.host_model import HostDenoiser

    narrow = host.patch_loader.load_model_patch(NARROW_ADAPTER)[0]
    with pytest.raises(InputError, match="model_patch: the audio adapter is for a 128-wide DiT of 40 blocks, "
                                         "but the model is 256 wide with 40 blocks"):
        HostDenoiser(host.wan, narrow)


def test_the_sampler_node_streams_and_resumes_on_the_host_model(host, tmp_path, monkeypatch):
    import nodes.sampler as sampler_node
    from magicinfinite_core.sampling import SamplerOptions

    monkeypatch.setattr(sampler_node, "output_directory", lambda: tmp_path)
    values = {"image": make_picture(height=SIZE, width=SIZE),
              "audio": make_audio(9, speakers=2, config=CONFIG), "text": text(), "width": SIZE,
              "height": SIZE, "sampler": "distilled", "steps": 2, "text_cfg": 1.0, "audio_cfg": 1.0,
              "seed": 1, "output": "file", "filename_prefix": "host/talk", "wan_model": host.wan,
              "model_patch": host.patch, "vae": make_vae(), "regions": regions(2),
              "options": SamplerOptions(window_frames=5, motion_frames=1)}
    first = sampler_node.MagicInfiniteSampler().sample(**values)["result"]
    path = Path(first[3])
    assert path.is_file() and path.parent == tmp_path / "host" and first[0].shape == (1, SIZE, SIZE, 3)
    modified = path.stat().st_mtime_ns
    again = sampler_node.MagicInfiniteSampler().sample(**values)["result"]
    assert again[3] == first[3] and path.stat().st_mtime_ns == modified  # found finished, not redone
