"""MagicInfiniteSaveVideo: the output node. Saves the sampler's frames + audio, or its streamed file, as an
MP4 in ComfyUI's output folder with the prompt and workflow embedded, and shows it in the UI."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from magicinfinite_core.errors import InputError
from magicinfinite_core.video_file import copy_mp4, video_size, write_mp4

from . import host


def _tags(prompt, extra_pnginfo) -> dict[str, str]:
    """The container tags ComfyUI's SaveVideo writes: each extra_pnginfo entry (the UI workflow) and the
    API prompt, as JSON text."""
    if host.metadata_disabled():
        return {}
    tags = {key: json.dumps(value) for key, value in (extra_pnginfo or {}).items()}
    if prompt is not None:
        tags["prompt"] = json.dumps(prompt)
    return tags


def _rendered_video(video_file: str) -> Path:
    """The real path of `video_file` (relative names are taken in the output folder) when it lies inside
    ComfyUI's output or temp folder, where the sampler streams its files. Anything else is refused with one
    message, whatever the path: the node must not copy, or tell the existence of, the server's other files."""
    candidate = Path(video_file)
    if not candidate.is_absolute():
        candidate = host.output_directory() / candidate
    real = Path(os.path.realpath(candidate))  # links and '..' resolved before the check
    folders = (host.output_directory(), host.temp_directory())
    if not any(real.is_relative_to(os.path.realpath(folder)) for folder in folders):
        raise InputError("video_file: only a video in ComfyUI's output or temp folder can be saved; connect "
                         "the MagicInfinite Sampler's 'file' output (with output = file), or the path of a "
                         "video rendered into the output folder.")
    return real


def _next_path(filename_prefix: str, width: int, height: int) -> tuple[Path, str]:
    """(full path, subfolder) of the next `<prefix>_<counter>_.mp4` in the output folder."""
    output = host.output_directory()
    if host.folder_paths is not None:
        folder, name, counter, subfolder, _ = host.folder_paths.get_save_image_path(
            filename_prefix, str(output), width, height)
        return Path(folder) / f"{name}_{counter:05}_.mp4", subfolder
    subfolder, name = os.path.split(os.path.normpath(filename_prefix))
    folder = output / subfolder
    if not folder.resolve().is_relative_to(output.resolve()):
        raise InputError(f"filename_prefix: {filename_prefix!r} leads outside the output folder {output}.")
    pattern = re.compile(rf"^{re.escape(name)}_(\d+)_")
    counters = [int(m.group(1)) for p in folder.glob("*") if (m := pattern.match(p.name))]
    return folder / f"{name}_{max(counters, default=0) + 1:05}_.mp4", subfolder


class MagicInfiniteSaveVideo:
    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "filename_prefix": ("STRING", {"default": "MagicInfinite/video", "tooltip": (
                    "Where the MP4 goes in ComfyUI's output folder: 'folder/name' gives "
                    "output/folder/name_00001_.mp4. May hold %date:yyyy-MM-dd%-style fields and %width%/"
                    "%height%.")}),
                "fps": ("FLOAT", {"default": 25.0, "min": 1.0, "max": 120.0, "step": 0.01, "tooltip": (
                    "Frame rate of the saved frames; connect the sampler's fps. Not used for video_file, "
                    "which keeps its own.")}),
            },
            "optional": {
                "images": ("IMAGE", {"tooltip": (
                    "The frames to save (the sampler's frames), encoded as H.264. Ignored when video_file "
                    "is connected.")}),
                "audio": ("AUDIO", {"tooltip": (
                    "The sound of the video (the sampler's audio), encoded as AAC and cut or padded to the "
                    "video's length.")}),
                "video_file": ("STRING", {"forceInput": True, "tooltip": (
                    "A finished MP4 streamed by the sampler (its 'file' output, with output = file): copied "
                    "into the output folder under filename_prefix without re-encoding, with the workflow "
                    "added. Only files inside ComfyUI's output or temp folder are taken.")}),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "save"
    CATEGORY = "MagicInfinite/output"
    DESCRIPTION = ("Saves the video as an MP4 (H.264 + AAC) in ComfyUI's output folder, with the workflow "
                   "embedded so dropping the file into ComfyUI opens it, and shows it in the UI.")

    def save(self, filename_prefix: str, fps: float, images=None, audio=None, video_file: str | None = None,
             prompt=None, extra_pnginfo=None):
        tags = _tags(prompt, extra_pnginfo)
        if video_file:
            video_file = _rendered_video(video_file)
            width, height = video_size(video_file)
            path, subfolder = _next_path(filename_prefix, width, height)
            path.parent.mkdir(parents=True, exist_ok=True)
            copy_mp4(video_file, path, tags=tags)
        elif images is not None:
            path, subfolder = _next_path(filename_prefix, images.shape[2], images.shape[1])
            path.parent.mkdir(parents=True, exist_ok=True)
            sound = {} if audio is None else {"waveform": audio["waveform"][0],
                                              "sample_rate": audio["sample_rate"]}
            write_mp4(path, images, fps, tags=tags, **sound)
        else:
            raise InputError("MagicInfinite Save Video: connect the sampler's frames to 'images' (with its "
                             "audio and fps), or its streamed file to 'video_file'; neither is connected.")
        saved = {"filename": path.name, "subfolder": subfolder, "type": "output"}
        # The frontend shows an "images" entry with animated=True and a video file name as a video player.
        return {"ui": {"images": [saved], "animated": (True,)}, "result": ()}


NODE_CLASS_MAPPINGS = {"MagicInfiniteSaveVideo": MagicInfiniteSaveVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"MagicInfiniteSaveVideo": "MagicInfinite Save Video"}
