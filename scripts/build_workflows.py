"""Write the shipped workflows: workflows/<name>.json (UI format, with a note listing the model files) and
workflows/api/<name>.json (API format), from the graphs described below.

    python scripts/build_workflows.py

Widget order comes from the nodes' declarations: ours from their INPUT_TYPES, ComfyUI's core nodes from
tests/workflows/core_nodes.json (made by scripts/dump_core_nodes.py). tests/workflows/test_workflows.py
checks the files on their own, against those declarations.
"""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from magicinfinite_core.mini.bundle import EMBEDDED_BUNDLE_DIR, EMBEDDED_BUNDLE_NAME, INFO_FILE, BundleInfo  # noqa: E402
from nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

CORE_NODES = ROOT / "tests" / "workflows" / "core_nodes.json"
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
SEED_NAMES = ("seed", "noise_seed")
NOTE_TYPE = "MarkdownNote"

# Combo inputs of our nodes that list the files of a model folder (the core ones are marked in CORE_NODES).
OUR_FILE_INPUTS = {
    "dit_name": "diffusion_models",
    "adapter_name": "model_patches",
    "lora_name": "loras",
    "audio_encoder_name": "audio_encoders",
}
# Values of file inputs that name no file: the embedded model, no adapter.
NOT_FILES = (EMBEDDED_BUNDLE_NAME, "none")
# Where users get the model files the workflows name.
SOURCES = {
    "wan2.1_i2v_480p_14B_fp8_scaled.safetensors":
        "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/tree/main/split_files/diffusion_models",
    "wan2.1_infiniteTalk_single_fp16.safetensors":
        "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/tree/main/split_files/model_patches",
    "wan2.1_infiniteTalk_multi_fp16.safetensors":
        "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/tree/main/split_files/model_patches",
    "lightx2v_I2V_14B_480p_cfg_step_distill_rank64_bf16.safetensors":
        "https://huggingface.co/Kijai/WanVideo_comfy/tree/main/Lightx2v",
    "wav2vec2-chinese-base_fp16.safetensors": "https://huggingface.co/Kijai/wav2vec2_safetensors",
    "umt5_xxl_fp8_e4m3fn_scaled.safetensors":
        "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/tree/main/split_files/text_encoders",
    "clip_vision_h.safetensors":
        "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/tree/main/split_files/clip_vision",
    "wan_2.1_vae.safetensors":
        "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/tree/main/split_files/vae",
}

DIT = "wan2.1_i2v_480p_14B_fp8_scaled.safetensors"
SINGLE = "wan2.1_infiniteTalk_single_fp16.safetensors"
MULTI = "wan2.1_infiniteTalk_multi_fp16.safetensors"
DISTILL_LORA = "lightx2v_I2V_14B_480p_cfg_step_distill_rank64_bf16.safetensors"
# With the distill LoRA, InfiniteTalk's and MultiTalk's READMEs guide audio at 2 (text 1): two passes a step.
DISTILL_AUDIO_CFG = 2.0
WAV2VEC = "wav2vec2-chinese-base_fp16.safetensors"
UMT5 = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
CLIP_VISION = "clip_vision_h.safetensors"
VAE = "wan_2.1_vae.safetensors"
# Every note says which model path a workflow uses and when to pick the other (docs/workflows.md).
PICK_NOTE = (
    "## Which workflow\n\n"
    "- **magicinfinite_comfyui_model_stack**: ComfyUI's own loaders (UNETLoader or a GGUF loader, "
    "LoraLoaderModelOnly, ModelPatchLoader) into our sampler. ComfyUI's memory manager loads the model, "
    "partially when the card is small: pick it for GGUF Q4-Q8 files on 8-12 GB cards, or to reuse your "
    "attention, compile or LoRA nodes. One GPU.\n"
    "- **The other workflows**: MagicInfinite Model Loader (MI_MODEL), our own loader (fp8 weights with "
    "LoRAs kept beside them); the sampler streams its blocks through vram_budget_gb. The rest of the "
    "graph (audio, regions, text, options, saving) works the same on both. Which on which card: the "
    "pack's docs/gpu.md."
)


# ---------------------------------------------------------------------------------------------- declarations

def _our_declaration(node_type: str) -> dict:
    cls = NODE_CLASS_MAPPINGS[node_type]
    spec = cls.INPUT_TYPES()
    return {
        "input": spec,
        "input_order": {section: list(inputs) for section, inputs in spec.items()},
        "output": list(cls.RETURN_TYPES),
        "output_name": list(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)),
        "display_name": NODE_DISPLAY_NAME_MAPPINGS.get(node_type, node_type),
    }


def declaration(node_type: str, core: dict) -> dict:
    return _our_declaration(node_type) if node_type in NODE_CLASS_MAPPINGS else core[node_type]


def _kind(spec: list) -> str:
    return "COMBO" if isinstance(spec[0], list) else spec[0]


def _options(spec: list) -> dict:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def is_widget(spec: list) -> bool:
    return _kind(spec) in WIDGET_TYPES and not _options(spec).get("forceInput")


def ordered_inputs(decl: dict) -> list[tuple[str, str, list]]:
    """(section, name, spec) in the order ComfyUI shows them."""
    return [(section, name, decl["input"][section][name])
            for section in ("required", "optional") for name in decl["input_order"].get(section, [])]


def file_folder(node_type: str, name: str, spec: list) -> str | None:
    if node_type.startswith("MagicInfinite"):
        return OUR_FILE_INPUTS.get(name)
    return _options(spec).get("files")


# ---------------------------------------------------------------------------------------------- graphs

@dataclass
class Node:
    type: str
    values: dict[str, Any] = field(default_factory=dict)  # widget values by input name
    links: dict[str, tuple[Node, int]] = field(default_factory=dict)  # input name -> (source, output index)
    title: str | None = None
    id: int = 0


@dataclass
class Workflow:
    name: str
    description: str
    nodes: list[Node]
    inputs_note: str  # what the user supplies (image, audio, masks)


def _graph(*nodes: Node) -> list[Node]:
    for index, node in enumerate(nodes, start=1):
        node.id = index
    return list(nodes)


def _text(clip: Node, prompt: str) -> Node:
    return Node("CLIPTextEncode", {"text": prompt}, {"clip": (clip, 0)})


def _conditioning(positive: Node, negative: Node | None = None) -> Node:
    """MagicInfiniteTextConditioning over the host's CONDITIONING (no prompt schedule of its own)."""
    links = {"positive": (positive, 0)} | ({"negative": (negative, 0)} if negative is not None else {})
    return Node("MagicInfiniteTextConditioning", {"prompt_schedule": "", "negative_prompt": ""}, links)


def _vision(loader: Node, image: Node) -> Node:
    return Node("CLIPVisionEncode", {"crop": "none"}, {"clip_vision": (loader, 0), "image": (image, 0)})


def _embed(encoder: Node, voices: list[Node], fps: float | tuple[Node, int] = 25.0,
           mode: str = "para") -> Node:
    links = {"audio_1" if i == 0 else f"audio_{i + 1}": (voice, 0) for i, voice in enumerate(voices)}
    links["audio_encoder"] = (encoder, 0)
    values = {"fps": 25.0 if isinstance(fps, tuple) else fps, "mode": mode, "normalize_loudness": True}
    if isinstance(fps, tuple):
        links["fps"] = fps
    return Node("MagicInfiniteAudioEmbed", values | {f"gain_{i}": 1.0 for i in range(1, 5)}, links)


def _sampler(model: Node, image: tuple[Node, int], embed: Node, text: Node, vae: Node, *, width: int,
             height: int, solver: str = "distilled", steps: int = 4, text_cfg: float = 1.0,
             audio_cfg: float = DISTILL_AUDIO_CFG, output: str = "frames", prefix: str = "MagicInfinite",
             extra: dict[str, tuple[Node, int]] | None = None) -> Node:
    values = {"width": width, "height": height, "sampler": solver, "steps": steps, "text_cfg": text_cfg,
              "audio_cfg": audio_cfg, "seed": 42, "output": output, "filename_prefix": prefix}
    links = {"model": (model, 0), "image": image, "audio": (embed, 0), "text": (text, 0), "vae": (vae, 0)}
    return Node("MagicInfiniteSampler", values, links | (extra or {}))


def _save_frames(sampler: Node, prefix: str) -> Node:
    return Node("MagicInfiniteSaveVideo", {"filename_prefix": prefix, "fps": 25.0},
                {"images": (sampler, 0), "audio": (sampler, 1), "fps": (sampler, 2)})


def _model(adapter: str, lora: Node | None) -> Node:
    values = {"dit_name": DIT, "adapter_name": adapter, "compute_dtype": "bf16", "weight_dtype": "default"}
    return Node("MagicInfiniteModelLoader", values, {"loras": (lora, 0)} if lora is not None else {})


def _lora() -> Node:
    return Node("MagicInfiniteLoraSelect", {"lora_name": DISTILL_LORA, "strength": 1.0})


def _loaders() -> tuple[Node, Node, Node, Node]:
    return (Node("MagicInfiniteAudioEncoderLoader", {"audio_encoder_name": WAV2VEC}),
            Node("CLIPLoader", {"clip_name": UMT5, "type": "wan", "device": "default"}),
            Node("CLIPVisionLoader", {"clip_name": CLIP_VISION}),
            Node("VAELoader", {"vae_name": VAE}))


def one_speaker() -> Workflow:
    encoder, clip, vision_loader, vae = _loaders()
    portrait = Node("LoadImage", {"image": "portrait.png"}, title="Portrait")
    voice = Node("LoadAudio", {"audio": "speech.wav"}, title="Voice")
    embed = _embed(encoder, [voice])
    prompt = _text(clip, "A person talks to the camera with natural expressions, head and hand movements.")
    text = _conditioning(prompt)
    vision = _vision(vision_loader, portrait)
    lora = _lora()
    model = _model(SINGLE, lora)
    sampler = _sampler(model, (portrait, 0), embed, text, vae, width=480, height=832,
                       extra={"clip_vision_output": (vision, 0)})
    return Workflow(
        "magicinfinite_one_speaker_distilled_4step",
        "One portrait and one voice; InfiniteTalk single-speaker adapter with the lightx2v 4-step distill "
        "LoRA: 4 steps per window, no CFG.",
        _graph(portrait, voice, encoder, embed, clip, prompt, text, vision_loader, vision, vae, lora, model,
               sampler, _save_frames(sampler, "MagicInfinite/one_speaker")),
        "- **Portrait**: your picture (Load Image, upload).\n- **Voice**: your speech (Load Audio, any "
        "format ComfyUI reads). The video is as long as the voice.")


def dubbing() -> Workflow:
    encoder, clip, vision_loader, vae = _loaders()
    source = Node("LoadVideo", {"file": "source.mp4"}, title="Video to dub")
    parts = Node("GetVideoComponents", {}, {"video": (source, 0)})
    first = Node("ImageFromBatch", {"batch_index": 0, "length": 1}, {"image": (parts, 0)})
    voice = Node("LoadAudio", {"audio": "new_speech.wav"}, title="New voice")
    # The source's own frame rate keeps each window on the source frames it replaces.
    embed = _embed(encoder, [voice], fps=(parts, 2))
    prompt = _text(clip, "A person talks to the camera.")
    text = _conditioning(prompt)
    vision = _vision(vision_loader, first)
    lora = _lora()
    model = _model(SINGLE, lora)
    sampler = _sampler(model, (parts, 0), embed, text, vae, width=832, height=480,
                       extra={"clip_vision_output": (vision, 0)})
    return Workflow(
        "magicinfinite_video_dubbing",
        "Video-to-video dubbing: each window takes its reference from the source video's frame at its own "
        "position and makes the lips follow the new voice; 4-step distilled.",
        _graph(source, parts, first, voice, encoder, embed, clip, prompt, text, vision_loader, vision, vae,
               lora, model, sampler, _save_frames(sampler, "MagicInfinite/dubbed")),
        "- **Video to dub**: the source video (Load Video, upload). Its frame rate is used for the new "
        "video.\n"
        "- **New voice**: the speech to put on it (Load Audio). The new video is as long as the voice; past "
        "the end of the source its last frame is held.")


def two_speakers() -> Workflow:
    encoder, clip, vision_loader, vae = _loaders()
    picture = Node("LoadImage", {"image": "two_speakers.png"}, title="Picture of both speakers")
    mask_1 = Node("LoadImageMask", {"image": "speaker1_mask.png", "channel": "red"}, title="Speaker 1 region")
    mask_2 = Node("LoadImageMask", {"image": "speaker2_mask.png", "channel": "red"}, title="Speaker 2 region")
    regions = Node("MagicInfiniteRegionMasks",
                   {"num_speakers": 2, "auto_split": "left to right", "grow_px": 0, "feather_px": 0}
                   | {f"box_{i}": "" for i in range(1, 5)},
                   {"image": (picture, 0), "mask_1": (mask_1, 0), "mask_2": (mask_2, 0)})
    preview = Node("PreviewImage", {}, {"images": (regions, 1)}, title="Regions (1 red, 2 blue)")
    voice_1 = Node("LoadAudio", {"audio": "speaker1.wav"}, title="Voice of speaker 1")
    voice_2 = Node("LoadAudio", {"audio": "speaker2.wav"}, title="Voice of speaker 2")
    embed = _embed(encoder, [voice_1, voice_2], mode="para")
    prompt = _text(clip, "Two people have a conversation at a table, facing the camera.")
    text = _conditioning(prompt)
    vision = _vision(vision_loader, picture)
    lora = _lora()
    model = _model(MULTI, lora)
    sampler = _sampler(model, (picture, 0), embed, text, vae, width=832, height=480,
                       extra={"clip_vision_output": (vision, 0), "regions": (regions, 0)})
    return Workflow(
        "magicinfinite_two_speakers_masks",
        "Two speakers, each driven by their own voice inside their own region (mask images); InfiniteTalk "
        "multi-speaker adapter, 4-step distilled.",
        _graph(picture, mask_1, mask_2, regions, preview, voice_1, voice_2, encoder, embed, clip, prompt,
               text, vision_loader, vision, vae, lora, model, sampler,
               _save_frames(sampler, "MagicInfinite/two_speakers")),
        "- **Picture of both speakers** (Load Image).\n"
        "- **Speaker 1/2 region**: black-and-white mask images of the same picture, white where that speaker "
        "is (Load Image (as Mask), red channel); or remove them and type boxes into the Region Masks node, "
        "or leave both empty for a left/right split.\n"
        "- **Voice of speaker 1/2**: their tracks, on the same timeline ('para'; 'add' plays them one after "
        "the other).")


def long_stream() -> Workflow:
    encoder, clip, vision_loader, vae = _loaders()
    portrait = Node("LoadImage", {"image": "portrait.png"}, title="Portrait")
    voice = Node("LoadAudio", {"audio": "long_speech.wav"}, title="Voice (5 minutes or more)")
    embed = _embed(encoder, [voice])
    text = Node("MagicInfiniteTextConditioning",
                {"prompt_schedule": "0: A person talks calmly to the camera.\n"
                                    "150: The person smiles and gestures while talking.",
                 "negative_prompt": ""},
                {"clip": (clip, 0)})
    vision = _vision(vision_loader, portrait)
    options = Node("MagicInfiniteSamplerOptions",
                   {"window_frames": 81, "motion_frames": 9, "motion_mode": "infinitetalk", "shift": 0.0,
                    "colour_match": 0.5, "devices": 1, "preset": "none"})
    lora = _lora()
    model = _model(SINGLE, lora)
    sampler = _sampler(model, (portrait, 0), embed, text, vae, width=480, height=832, output="file",
                       prefix="MagicInfinite/long/render",
                       extra={"clip_vision_output": (vision, 0), "options": (options, 0)})
    save = Node("MagicInfiniteSaveVideo", {"filename_prefix": "MagicInfinite/long/talk", "fps": 25.0},
                {"video_file": (sampler, 3)})
    return Workflow(
        "magicinfinite_long_video_stream",
        "A long video (5 minutes or more) streamed window by window into an MP4 in flat memory, with a "
        "prompt schedule and colour matching against drift; queue it again after a crash or cancel and it "
        "continues where it stopped.",
        _graph(portrait, voice, encoder, embed, clip, text, vision_loader, vision, options, lora, model, vae,
               sampler, save),
        "- **Portrait** (Load Image) and **Voice** (Load Audio): any length; 5 minutes at 25 fps is 7500 "
        "frames in about 105 windows.\n"
        "- The sampler streams into output/MagicInfinite/long/render_<hash>.mp4 (its resume point); Save "
        "Video copies it, without re-encoding, to talk_00001_.mp4 with this "
        "workflow embedded. Delete the render file once you have the copy.")


def base_cfg() -> Workflow:
    encoder, clip, vision_loader, vae = _loaders()
    portrait = Node("LoadImage", {"image": "portrait.png"}, title="Portrait")
    voice = Node("LoadAudio", {"audio": "speech.wav"}, title="Voice")
    embed = _embed(encoder, [voice])
    positive = _text(clip, "A person talks to the camera with natural expressions, head and hand movements.")
    negative = _text(clip, "blurry, static, still picture, distorted face, deformed hands, extra fingers, "
                           "low quality, subtitles, watermark")
    text = _conditioning(positive, negative)
    vision = _vision(vision_loader, portrait)
    model = _model(SINGLE, None)
    sampler = _sampler(model, (portrait, 0), embed, text, vae, width=480, height=832, solver="dpmpp_2m",
                       steps=40, text_cfg=5.0, audio_cfg=4.0, extra={"clip_vision_output": (vision, 0)})
    return Workflow(
        "magicinfinite_base_text_audio_cfg",
        "The base model (no distill LoRA) with text and audio classifier-free guidance: 40 steps, text CFG "
        "5, audio CFG 4 (3 passes per step; 15x the work of the 4-step workflows' 4 x 2 passes).",
        _graph(portrait, voice, encoder, embed, clip, positive, negative, text, vision_loader, vision, vae,
               model, sampler, _save_frames(sampler, "MagicInfinite/base_cfg")),
        "- **Portrait** (Load Image) and **Voice** (Load Audio).\n- The negative prompt matters here: text "
        "CFG pushes away from it.")


def embedded_demo() -> Workflow:
    """The embedded stand-in model with the size, window and schedule it was made for: runs with nothing
    downloaded (also what the real-host test runs)."""
    info = BundleInfo.from_json((EMBEDDED_BUNDLE_DIR / INFO_FILE).read_text(encoding="utf-8"))
    portrait = Node("LoadImage", {"image": "portrait.png"}, title="Portrait")
    voice = Node("LoadAudio", {"audio": "speech.wav"}, title="Voice")
    encoder = Node("MagicInfiniteAudioEncoderLoader", {"audio_encoder_name": EMBEDDED_BUNDLE_NAME})
    embed = _embed(encoder, [voice], fps=info.fps)
    # fp32: the small model is meant for the CPU, where bf16 matmuls are slow.
    model = Node("MagicInfiniteModelLoader", {"dit_name": EMBEDDED_BUNDLE_NAME, "adapter_name": "none",
                                              "compute_dtype": "fp32", "weight_dtype": "default"})
    text = Node("MagicInfiniteTextConditioning",
                {"prompt_schedule": info.default_prompt, "negative_prompt": info.negative_prompt},
                {"model": (model, 0)})
    options = Node("MagicInfiniteSamplerOptions",
                   {"window_frames": info.window_frames, "motion_frames": info.motion_frames,
                    "motion_mode": "infinitetalk", "shift": info.shift, "colour_match": 0.0, "devices": 1,
                    "preset": "none"})
    sampler = Node("MagicInfiniteSampler",
                   {"width": info.width, "height": info.height, "sampler": "distilled", "steps": info.steps,
                    "text_cfg": 1.0, "audio_cfg": 1.0, "seed": 42, "output": "frames",
                    "filename_prefix": "MagicInfinite"},
                   {"model": (model, 0), "image": (portrait, 0), "audio": (embed, 0), "text": (text, 0),
                    "options": (options, 0)})
    return Workflow(
        "magicinfinite_embedded_demo",
        f"The embedded {info.name} model: no download, runs on a CPU. A small stand-in "
        + ("trained only on procedural cartoon faces (docs/mini.md): the mouth follows the voice, but it "
           "draws that world, not real people." if info.trained else
           "(randomly initialised, untrained): it shows the pipeline, not a talking face.")
        + f" {info.width}x{info.height} at {info.fps:g} fps.",
        _graph(portrait, voice, encoder, embed, model, text, options, sampler,
               _save_frames(sampler, "MagicInfinite/embedded_demo")),
        "- **Portrait** (Load Image): e.g. magicinfinite_core/assets/sample_portrait.png from the pack.\n"
        "- **Voice** (Load Audio): e.g. magicinfinite_core/assets/sample_speech.wav. The video is as long as "
        f"the voice.\n- Prompts are made of the words the model knows: {', '.join(info.prompt_words)}.")


def host_model_stack() -> Workflow:
    """For users of ComfyUI's native InfiniteTalk template: their loaders, our one sampler node."""
    portrait = Node("LoadImage", {"image": "portrait.png"}, title="Portrait")
    voice = Node("LoadAudio", {"audio": "speech.wav"}, title="Voice")
    audio_loader = Node("AudioEncoderLoader", {"audio_encoder_name": WAV2VEC})
    encoded = Node("AudioEncoderEncode", {}, {"audio_encoder": (audio_loader, 0), "audio": (voice, 0)})
    embed = Node("MagicInfiniteAudioEmbed",
                 {"fps": 25.0, "mode": "para", "normalize_loudness": True}
                 | {f"gain_{i}": 1.0 for i in range(1, 5)},
                 {"audio_1": (voice, 0), "encoder_output_1": (encoded, 0)})
    clip = Node("CLIPLoader", {"clip_name": UMT5, "type": "wan", "device": "default"})
    vision_loader = Node("CLIPVisionLoader", {"clip_name": CLIP_VISION})
    vae = Node("VAELoader", {"vae_name": VAE})
    unet = Node("UNETLoader", {"unet_name": DIT, "weight_dtype": "default"})
    lora = Node("LoraLoaderModelOnly", {"lora_name": DISTILL_LORA, "strength_model": 1.0},
                {"model": (unet, 0)})
    patch = Node("ModelPatchLoader", {"name": SINGLE})
    prompt = _text(clip, "A person talks to the camera with natural expressions, head and hand movements.")
    text = _conditioning(prompt)
    vision = _vision(vision_loader, portrait)
    values = {"width": 480, "height": 832, "sampler": "distilled", "steps": 4, "text_cfg": 1.0,
              "audio_cfg": DISTILL_AUDIO_CFG, "seed": 42, "output": "frames",
              "filename_prefix": "MagicInfinite"}
    sampler = Node("MagicInfiniteSampler", values,
                   {"wan_model": (lora, 0), "model_patch": (patch, 0), "image": (portrait, 0),
                    "audio": (embed, 0), "text": (text, 0), "vae": (vae, 0),
                    "clip_vision_output": (vision, 0)})
    return Workflow(
        "magicinfinite_comfyui_model_stack",
        "One speaker on ComfyUI's own model stack (as in its InfiniteTalk template): UNETLoader, "
        "LoraLoaderModelOnly and ModelPatchLoader feed the MagicInfinite sampler, which brings windows of "
        "any length, 1-4 speakers and streaming. ComfyUI's memory manager loads the model (partially on "
        "small cards); fp8 or GGUF files and model patches from your graph apply.",
        _graph(portrait, voice, audio_loader, encoded, embed, clip, prompt, text, vision_loader, vision, vae,
               unet, lora, patch, sampler, _save_frames(sampler, "MagicInfinite/comfyui_model")),
        "- **Portrait** (Load Image) and **Voice** (Load Audio).\n"
        "- Replace UNETLoader by a GGUF loader (Q4-Q8) on 8-16 GB cards; add attention or compile patch "
        "nodes after LoraLoaderModelOnly: the sampler runs whatever MODEL arrives.\n"
        "- AudioEncoderEncode suits clips up to a minute; for long voices use MagicInfinite Audio Encoder "
        "Loader on the same wav2vec2 file (audio_encoder input of Audio Embed): the reference computation "
        "in flat memory.")


WORKFLOWS = (one_speaker, dubbing, two_speakers, long_stream, base_cfg, host_model_stack, embedded_demo)


# ---------------------------------------------------------------------------------------------- writers

def _source_links(workflow: Workflow) -> list[tuple[int, Node, int, Node, str]]:
    """(link id, source, output index, target, input name) in node order."""
    links = []
    for target in workflow.nodes:
        for name, (source, slot) in target.links.items():
            links.append((len(links) + 1, source, slot, target, name))
    return links


def _widget_values(node: Node, decl: dict) -> list:
    values = []
    extras = []
    for section, name, spec in ordered_inputs(decl):
        if not is_widget(spec):
            continue
        if section == "optional" and extras:
            values += extras
            extras = []
        values.append(node.values.get(name, _options(spec).get("default")))
        if name in SEED_NAMES or _options(spec).get("control_after_generate"):
            values.append("fixed")
        options = _options(spec)
        if options.get("image_upload") or options.get("video_upload"):
            extras = ["image"]
        elif options.get("audio_upload"):
            extras = [None, None]
    return values + extras


def _depths(nodes: list[Node]) -> dict[int, int]:
    depth: dict[int, int] = {}

    def visit(node: Node) -> int:
        if node.id not in depth:
            depth[node.id] = 1 + max((visit(source) for source, _ in node.links.values()), default=-1)
        return depth[node.id]

    for node in nodes:
        visit(node)
    return depth


def _note_text(workflow: Workflow, core: dict) -> str:
    files: dict[str, list[str]] = {}
    for node in workflow.nodes:
        decl = declaration(node.type, core)
        for _, name, spec in ordered_inputs(decl):
            folder = file_folder(node.type, name, spec)
            if folder and folder != "input" and node.values.get(name) not in (None, *NOT_FILES):
                files.setdefault(folder, [])
                if node.values[name] not in files[folder]:
                    files[folder].append(node.values[name])
    lines = [f"# {workflow.description}", "", PICK_NOTE, "", "## Model files", ""]
    if files:
        lines += ["Put each file in the folder shown, under ComfyUI/models/:", ""]
    else:
        lines += [f"None to download: {EMBEDDED_BUNDLE_NAME} ships inside the pack.", ""]
    for folder in sorted(files):
        for name in files[folder]:
            lines.append(f"- `models/{folder}/{name}`  ")
            lines.append(f"  from {SOURCES[name]}")
    lines += ["", "## Your inputs", "", workflow.inputs_note, "",
              "Every MagicInfinite input has a tooltip; see the pack's docs/workflows.md."]
    return "\n".join(lines)


def to_ui(workflow: Workflow, core: dict) -> dict:
    links = _source_links(workflow)
    depth = _depths(workflow.nodes)
    column_y: dict[int, float] = {}
    ui_nodes = []
    ui_links = []
    for link_id, source, slot, target, _ in links:
        kind = declaration(source.type, core)["output"][slot]
        ui_links.append([link_id, source.id, slot, target.id, None, kind])
    for order, node in enumerate(workflow.nodes):
        decl = declaration(node.type, core)
        inputs = []
        widget_rows = 0
        for _, name, spec in ordered_inputs(decl):
            linked = next((link for link in links if link[3] is node and link[4] == name), None)
            if is_widget(spec):
                widget_rows += 3 if _options(spec).get("multiline") else 1
                if linked is None:
                    continue
            entry = {"name": name, "type": _kind(spec), "link": None if linked is None else linked[0]}
            if is_widget(spec):
                entry["widget"] = {"name": name}
            if linked is not None:
                ui_links[linked[0] - 1][4] = len(inputs)
            inputs.append(entry)
        names = zip(decl["output"], decl["output_name"], strict=True)
        outputs = [{"name": out_name, "type": kind,
                    "links": [link[0] for link in links if link[1] is node and link[2] == slot]}
                   for slot, (kind, out_name) in enumerate(names)]
        height = 46 + 22 * max(len(inputs), len(outputs)) + 26 * widget_rows
        column = depth[node.id]
        y = column_y.get(column, 0.0)
        column_y[column] = y + height + 60
        entry = {"id": node.id, "type": node.type, "pos": [column * 420, y], "size": [360, height],
                 "flags": {}, "order": order, "mode": 0, "inputs": inputs, "outputs": outputs,
                 "properties": {"Node name for S&R": node.type},
                 "widgets_values": _widget_values(node, decl)}
        if node.title:
            entry["title"] = node.title
        ui_nodes.append(entry)
    note_id = len(workflow.nodes) + 1
    ui_nodes.append({"id": note_id, "type": NOTE_TYPE, "pos": [0, -620], "size": [760, 580], "flags": {},
                     "order": len(workflow.nodes), "mode": 0, "inputs": [], "outputs": [],
                     "title": "Read me: model files and inputs", "properties": {},
                     "widgets_values": [_note_text(workflow, core)]})
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, workflow.name)), "revision": 0,
            "last_node_id": note_id, "last_link_id": len(links), "nodes": ui_nodes, "links": ui_links,
            "groups": [], "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [40, 680]}}, "version": 0.4}


def to_api(workflow: Workflow, core: dict) -> dict:
    graph = {}
    for node in workflow.nodes:
        decl = declaration(node.type, core)
        inputs: dict[str, Any] = {}
        for _, name, spec in ordered_inputs(decl):
            if name in node.links:
                source, slot = node.links[name]
                inputs[name] = [str(source.id), slot]
            elif is_widget(spec):
                inputs[name] = node.values.get(name, _options(spec).get("default"))
        graph[str(node.id)] = {"inputs": inputs, "class_type": node.type,
                               "_meta": {"title": node.title or decl.get("display_name", node.type)}}
    return graph


def rendered() -> dict[Path, str]:
    """Every workflow file's path and its text, UI format in workflows/ and API format in workflows/api/."""
    core = json.loads(CORE_NODES.read_text(encoding="utf-8"))["nodes"]
    files = {}
    for make in WORKFLOWS:
        workflow = make()
        for path, graph in ((ROOT / "workflows" / f"{workflow.name}.json", to_ui(workflow, core)),
                            (ROOT / "workflows" / "api" / f"{workflow.name}.json", to_api(workflow, core))):
            files[path] = json.dumps(graph, indent=2, ensure_ascii=False) + "\n"
    return files


def main() -> None:
    (ROOT / "workflows" / "api").mkdir(parents=True, exist_ok=True)
    for path, text in rendered().items():
        path.write_text(text, encoding="utf-8")
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
