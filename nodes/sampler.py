"""MagicInfiniteSampler (a talking video of any length) and MagicInfiniteSamplerOptions (advanced options).

The sampler runs on either model stack: our MI_MODEL (MagicInfinite Model Loader), or ComfyUI's own MODEL
(UNETLoader, GGUF loaders, LoRA and patch nodes) with the InfiniteTalk/MultiTalk MODEL_PATCH beside it.
"""

from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from PIL import Image

from magicinfinite_core.errors import InputError
from magicinfinite_core.latents import latent_frames, preview_rgb
from magicinfinite_core.models.streaming import (
    BlockStreamer,
    GiB,
    activation_reserve,
    auto_budget,
    parse_budget,
)
from magicinfinite_core.sampling import (
    MOTION_MODES,
    SOLVERS,
    SamplerOptions,
    SamplerSettings,
    sample_video,
    stream_video,
)
from magicinfinite_core.sampling.presets import NO_PRESET, PRESET_CHOICES, with_preset
from magicinfinite_core.sampling.seams import DEFAULT_SEAM_FRAMES
from magicinfinite_core.sampling.settings import SIZE_MULTIPLE
from magicinfinite_core.sampling.window import DEFAULT_MOTION_FRAMES, DEFAULT_WINDOW_FRAMES

from .host import model_management, output_directory, progress_callback, vae_identity
from .host_model import HostDenoiser, check_model_inputs
from .multi_gpu import pooled_model

OUTPUTS = ("frames", "file", "live")
PREVIEW_SIZE = 512


@contextmanager
def _on_compute_device(module: torch.nn.Module, vram_budget_gb: str, settings: SamplerSettings):
    """The model on the host's compute device while sampling, back on the offload device after; with a
    budget ("auto" on CUDA) its blocks stream through the budget instead."""
    if model_management is None:
        yield torch.device("cpu")
        return
    device = model_management.get_torch_device()
    budget = parse_budget(vram_budget_gb)
    if budget is not None and (budget != "auto" or device.type == "cuda"):
        with _streamed(module, device, budget, settings):
            yield device
        return
    # Make room first: the host may still hold other models (text encoder, CLIP vision, VAE) there.
    needed = model_management.module_size(module) + model_management.minimum_inference_memory()
    model_management.free_memory(needed, device)
    module.to(device)
    try:
        yield device
    finally:
        module.to(model_management.unet_offload_device())
        model_management.soft_empty_cache()


@contextmanager
def _streamed(module: torch.nn.Module, device: torch.device, budget: float | str, settings: SamplerSettings):
    grid = (settings.height // SIZE_MULTIPLE) * (settings.width // SIZE_MULTIPLE)  # tokens per latent frame
    tokens = latent_frames(settings.options.window_frames) * grid
    reserve = activation_reserve(module.config.dim, module.config.ffn_dim, tokens)
    wanted = model_management.module_size(module) if budget == "auto" else int(budget * GiB)
    model_management.free_memory(wanted + reserve, device)  # the host unloads what it can spare
    nbytes = auto_budget(device, reserve) if budget == "auto" else int(budget * GiB)
    try:
        with BlockStreamer(module, device, nbytes):
            yield
    finally:
        model_management.soft_empty_cache()


def _preview(latent: torch.Tensor) -> tuple:
    return ("JPEG", Image.fromarray(preview_rgb(latent).numpy()), PREVIEW_SIZE)


class MagicInfiniteSampler:
    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": (
                    "The portrait (one image), or a source video (several frames) to dub: then each window "
                    "takes its reference from the source frame at its own position. Resized to cover "
                    "width x height and centre-cropped.")}),
                "audio": ("MI_AUDIO", {"tooltip": (
                    "Voices from MagicInfinite Audio Embed; the video is exactly as long as this audio.")}),
                "text": ("MI_TEXT", {"tooltip": (
                    "Prompt (or prompt schedule) from MagicInfinite Text Conditioning.")}),
                "width": ("INT", {"default": 832, "min": 16, "max": 4096, "step": 16, "tooltip": (
                    "Video width in pixels, a multiple of 16.")}),
                "height": ("INT", {"default": 480, "min": 16, "max": 4096, "step": 16, "tooltip": (
                    "Video height in pixels, a multiple of 16.")}),
                "sampler": (list(SOLVERS), {"default": "distilled", "tooltip": (
                    "distilled: x0 prediction then fresh noise (step-distilled weights, e.g. lightx2v, "
                    "4 steps). euler / dpmpp_2m: ODE solvers for base weights (about 40 steps, with CFG).")}),
                "steps": ("INT", {"default": 4, "min": 1, "max": 200, "tooltip": (
                    "Steps per window; a distilled model wants the steps it was distilled for (4).")}),
                "text_cfg": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 20.0, "step": 0.1, "tooltip": (
                    "Text guidance. 1 = off (CFG-distilled weights). Base weights: about 5 (needs a negative "
                    "prompt).")}),
                "audio_cfg": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 20.0, "step": 0.1, "tooltip": (
                    "Audio (lip-sync) guidance. 1 = off, one pass per step. With a distill LoRA: text 1, "
                    "audio 2 (2 passes per step, as the shipped workflows). Base weights: about 4 (3 for "
                    "long videos). The embedded model and FlashTalk: 1 (distilled without guidance).")}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "tooltip": (
                    "Same seed, same video. Each window draws its noise from a seed made from this one.")}),
                "output": (list(OUTPUTS), {"default": "frames", "tooltip": (
                    "frames: every frame as IMAGE (short videos). file: streamed into an MP4 (H.264 + AAC) "
                    "in the output folder window by window in flat memory (long videos); IMAGE is then the "
                    "last frame. An interrupted file render continues where it stopped when queued again "
                    "with the same inputs. live: as file, and every finished window is also published to "
                    "the HLS playlist <filename_prefix>.m3u8, playable while the render runs.")}),
                "filename_prefix": ("STRING", {"default": "MagicInfinite", "tooltip": (
                    "For output 'file' or 'live': the name in the output folder (subfolders allowed); a hash "
                    "of the inputs is appended, so the same inputs find their unfinished render again.")}),
            },
            "optional": {
                "model": ("MI_MODEL", {"tooltip": (
                    "DiT + audio adapter from MagicInfinite Model Loader. Or leave this empty and connect "
                    "ComfyUI's MODEL to wan_model with its model_patch.")}),
                "wan_model": ("MODEL", {"tooltip": (
                    "Instead of model: ComfyUI's Wan2.1 I2V MODEL (UNETLoader fp8/fp16, a GGUF loader, "
                    "after LoraLoaderModelOnly or attention/compile patches: they all apply). ComfyUI's "
                    "memory manager loads it, partially on small cards. Our audio attention (1-4 speakers) "
                    "is added through block patches.")}),
                "model_patch": ("MODEL_PATCH", {"tooltip": (
                    "With wan_model: the InfiniteTalk or MultiTalk adapter from ModelPatchLoader.")}),
                "vae": ("VAE", {"tooltip": (
                    "The Wan2.1 VAE (VAELoader, wan_2.1_vae.safetensors). Optional only for the embedded "
                    "MagicInfinite-Mini model, which brings its own (one connected here replaces it).")}),
                "regions": ("MI_REGIONS", {"tooltip": (
                    "Speaker regions from MagicInfinite Region Masks: audio track i moves region i only.")}),
                "clip_vision_output": ("CLIP_VISION_OUTPUT", {"tooltip": (
                    "CLIPVisionEncode of the portrait with clip_vision_h (crop none): helps identity.")}),
                "options": ("MI_SAMPLER_OPTIONS", {"tooltip": (
                    "Advanced: window and motion frames, motion scheme, shift, sigmas, colour matching, or "
                    "a preset (e.g. flashtalk) that also sets size, sampler, steps and CFG.")}),
                "vram_budget_gb": ("STRING", {"default": "auto", "tooltip": (
                    "GPU memory (GiB) the model's weights may take: its blocks stream in from pinned host "
                    "memory, the next while the current computes. auto: the free memory minus what the "
                    "activations need (all blocks stay on the card when they fit). off: the whole model "
                    "moves to the card. Ignored on the CPU. Does not change the video. For model (MI_MODEL) "
                    "only: ComfyUI's memory manager places a wan_model.")}),
            },
        }

    RETURN_TYPES = ("IMAGE", "AUDIO", "FLOAT", "STRING")
    RETURN_NAMES = ("images", "audio", "fps", "file")
    OUTPUT_TOOLTIPS = (
        "The video's frames (output 'frames'), or its last frame (output 'file').",
        "The sound track, cut to the video's length.",
        "Frames per second of the video (the audio features' fps).",
        "Path of the MP4 (output 'file'); empty for output 'frames'.",
    )
    OUTPUT_NODE = True
    FUNCTION = "sample"
    CATEGORY = "MagicInfinite/sampling"
    DESCRIPTION = ("Makes a talking video as long as the audio, window by window: each window continues from "
                   "the last frames of the one before, so memory stays flat however long the audio.")

    def sample(self, image, audio, text, width: int, height: int, sampler: str, steps: int,
               text_cfg: float, audio_cfg: float, seed: int, output: str, filename_prefix: str,
               model=None, wan_model=None, model_patch=None, vae=None, regions=None, clip_vision_output=None,
               options=None, vram_budget_gb: str = "auto"):
        check_model_inputs(model, wan_model, model_patch)
        chosen = SamplerSettings(width, height, sampler, steps, text_cfg, audio_cfg, seed,
                                 options if options is not None else SamplerOptions())
        settings = with_preset(chosen, audio.fps)
        vae = vae if vae is not None or model is None else model.vae
        if vae is None:
            raise InputError("vae: connect a VAE (VAELoader with the Wan2.1 VAE, wan_2.1_vae.safetensors); "
                             "only the embedded MagicInfinite-Mini model brings its own.")
        if model is not None and settings.options.devices > 1:  # workers hold the GPUs; the loop stays here
            denoiser = pooled_model(model.dit, settings.options.devices)
            placement, identity = nullcontext(torch.device("cpu")), (model.dit.sources, model.dit.loras)
        elif model is not None:
            denoiser = model.dit.module
            placement = _on_compute_device(model.dit.module, vram_budget_gb, settings)
            identity = (model.dit.sources, model.dit.loras)
        elif settings.options.devices > 1:
            raise InputError(f"options: devices {settings.options.devices} needs our MI_MODEL (MagicInfinite "
                             "Model Loader): ComfyUI's MODEL cannot be rebuilt in worker processes. Set "
                             "devices to 1, or load the model with MagicInfinite Model Loader.")
        else:  # the MODEL's own identity (files, LoRAs, patches) is the denoiser's
            denoiser = HostDenoiser(wan_model, model_patch)
            placement, identity = denoiser.session(), ()
        clip = None if clip_vision_output is None else clip_vision_output.penultimate_hidden_states
        progress = progress_callback(settings.total_steps(audio.num_frames))
        arguments = {"clip_tokens": clip, "regions": regions,
                     "callback": lambda step: progress(step.done, _preview(step.latent)),
                     "resume_key": repr((*identity, vae_identity(vae)))}
        with placement as device:
            if output in ("file", "live"):
                result = stream_video(denoiser, vae, image, audio, text, settings, device=device,
                                      directory=output_directory(), filename_prefix=filename_prefix,
                                      live=output == "live", **arguments)
            else:
                result = sample_video(denoiser, vae, image, audio, text, settings, device=device,
                                      **arguments)
        sound = {"waveform": result.waveform.unsqueeze(0), "sample_rate": result.sample_rate}
        outputs = (result.frames, sound, result.fps, "" if result.path is None else str(result.path))
        if result.path is None:
            return outputs
        folder = result.path.resolve().parent.relative_to(output_directory().resolve())
        saved = {"filename": result.path.name, "subfolder": "" if folder == Path() else folder.as_posix(),
                 "type": "output"}
        return {"ui": {"images": [saved], "animated": (True,)}, "result": outputs}


class MagicInfiniteSamplerOptions:
    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "window_frames": ("INT", {"default": DEFAULT_WINDOW_FRAMES, "min": 5, "max": 241, "step": 4,
                                          "tooltip": (
                    "Frames per window, 4k+1 (81 = 3.24 s at 25 fps, what the models were trained on).")}),
                "motion_frames": ("INT", {"default": DEFAULT_MOTION_FRAMES, "min": 1, "max": 240, "tooltip": (
                    "Frames each window takes over from the previous one (InfiniteTalk 9, MultiTalk 25); "
                    "fewer than window_frames.")}),
                "motion_mode": (list(MOTION_MODES), {"default": "infinitetalk", "tooltip": (
                    "infinitetalk: the motion frames stay clean and the portrait stays the reference "
                    "(identity holds over long videos). multitalk: the motion frames are re-noised each "
                    "step and the last one becomes the reference (for MultiTalk weights).")}),
                "shift": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 100.0, "step": 0.1, "tooltip": (
                    "Noise schedule shift; 0 = automatic: 5 for the distilled sampler, else 7 at 480p and "
                    "11 at 720p. Distill-LoRA READMEs suggest 2 to 5.")}),
                "colour_match": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip": (
                    "Match every frame's colour (Lab mean and spread) to the reference: 0 off, 1 full. "
                    "Counters colour drift in videos over about a minute.")}),
                "devices": ("INT", {"default": 1, "min": 1, "max": 16, "tooltip": (
                    "GPUs each window is split over (sequence parallel). Above 1 the pack starts one worker "
                    "process per GPU, each loading the MagicInfinite Model Loader's files once, and keeps "
                    "them for the next queue items. Only for MI_MODEL: a ComfyUI MODEL cannot be rebuilt in "
                    "other processes. 14B: 2, 4, 5 or 8 split its 40 heads evenly (others use the slower "
                    "ring path).")}),
            },
            "optional": {
                "preset": (list(PRESET_CHOICES), {"default": NO_PRESET, "tooltip": (
                    "flashtalk: SoulX-FlashTalk's published settings (its commit 688982e): 448x768, 33-frame "
                    "windows with 5 motion frames, distilled sampler, 4 steps, shift 5, colour match 1, no "
                    "CFG, 25 fps audio. It replaces those inputs of the sampler and this node.")}),
                "sigmas": ("SIGMAS", {"tooltip": (
                    "A custom noise schedule (flow-matching sigmas, 1 to 0); replaces steps and shift.")}),
                "seam_frames": ("INT", {"default": DEFAULT_SEAM_FRAMES, "min": 0, "max": 80, "tooltip": (
                    "New frames over which each window is eased onto the last frame already written, so a "
                    "window seam does not jump (the held frames come back slightly changed through the "
                    "VAE). 0 = off, as the reference implementations.")}),
            },
        }

    RETURN_TYPES = ("MI_SAMPLER_OPTIONS",)
    RETURN_NAMES = ("options",)
    OUTPUT_TOOLTIPS = ("Advanced options for the MagicInfinite sampler.",)
    FUNCTION = "build"
    CATEGORY = "MagicInfinite/sampling"
    DESCRIPTION = "Advanced MagicInfinite sampler options: how windows join, the schedule, colour matching."

    def build(self, window_frames: int, motion_frames: int, motion_mode: str, shift: float,
              colour_match: float, devices: int = 1, sigmas=None, preset: str = NO_PRESET,
              seam_frames: int = DEFAULT_SEAM_FRAMES):
        return (SamplerOptions(window_frames, motion_frames, motion_mode, shift if shift > 0 else None,
                               None if sigmas is None else tuple(sigmas.flatten().tolist()), colour_match,
                               preset=preset, devices=devices, seam_frames=seam_frames),)


NODE_CLASS_MAPPINGS = {
    "MagicInfiniteSampler": MagicInfiniteSampler,
    "MagicInfiniteSamplerOptions": MagicInfiniteSamplerOptions,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "MagicInfiniteSampler": "MagicInfinite Sampler",
    "MagicInfiniteSamplerOptions": "MagicInfinite Sampler Options",
}
