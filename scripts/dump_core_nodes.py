"""Write tests/workflows/core_nodes.json: the declarations of the ComfyUI core nodes our workflows use, taken
from a running ComfyUI's /object_info, so the workflow tests can check them without ComfyUI.

    python main.py --cpu --listen 127.0.0.1 --port 8188      # in a ComfyUI checkout
    python scripts/dump_core_nodes.py --url http://127.0.0.1:8188

The nodes kept are those used by workflows/*.json and workflows/api/*.json (other than ours and the
frontend-only notes). Combo inputs that list files (model folders, uploads to the input folder) are stored
with the folder they list instead of this machine's file names.
"""

from __future__ import annotations

import argparse
import json
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "tests" / "workflows" / "core_nodes.json"
OUR_PREFIX = "MagicInfinite"
FRONTEND_ONLY = {"Note", "MarkdownNote"}
UPLOAD_FLAGS = ("image_upload", "audio_upload", "video_upload")
# Combo inputs of core loaders that list the files of a model folder.
MODEL_FILE_INPUTS = {
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("VAELoader", "vae_name"): "vae",
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("ModelPatchLoader", "name"): "model_patches",
    ("AudioEncoderLoader", "audio_encoder_name"): "audio_encoders",
}
KEPT_FIELDS = ("display_name", "input", "input_order", "output", "output_name", "output_node")


def used_node_types(root: Path = ROOT) -> set[str]:
    """Node types of every workflow file, UI format (nodes[].type) or API format (class_type)."""
    types: set[str] = set()
    paths = sorted((root / "workflows").glob("*.json")) + sorted((root / "workflows" / "api").glob("*.json"))
    for path in paths:
        graph = json.loads(path.read_text(encoding="utf-8"))
        if "nodes" in graph:
            types |= {node["type"] for node in graph["nodes"]}
        else:
            types |= {node["class_type"] for node in graph.values()}
    return {t for t in types if not t.startswith(OUR_PREFIX) and t not in FRONTEND_ONLY}


def _file_input(node_type: str, name: str, spec: list) -> list:
    """A combo that lists files, with the list replaced by the folder it comes from."""
    options = dict(spec[1]) if len(spec) > 1 else {}
    folder = MODEL_FILE_INPUTS.get((node_type, name))
    if folder is None and any(options.get(flag) for flag in UPLOAD_FLAGS):
        folder = "input"
    if folder is None:
        return spec
    options.pop("options", None)
    return ["COMBO", options | {"files": folder}]


def strip(node_type: str, info: dict) -> dict:
    kept = {key: info[key] for key in KEPT_FIELDS if key in info}
    kept["input"] = {
        section: {name: _file_input(node_type, name, spec) if section != "hidden" else spec
                  for name, spec in inputs.items()}
        for section, inputs in info["input"].items()
    }
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8188", help="a running ComfyUI")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--also", nargs="*", default=[], help="more node types to keep")
    args = parser.parse_args()

    with urllib.request.urlopen(f"{args.url}/object_info", timeout=60) as response:
        object_info = json.load(response)
    with urllib.request.urlopen(f"{args.url}/system_stats", timeout=60) as response:
        version = json.load(response)["system"].get("comfyui_version", "unknown")
    wanted = used_node_types() | set(args.also)
    missing = sorted(wanted - set(object_info))
    if missing:
        raise SystemExit(f"this ComfyUI ({version}) has no node types {missing}")
    table = {"comfyui_version": version,
             "nodes": {name: strip(name, object_info[name]) for name in sorted(wanted)}}
    args.output.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{len(wanted)} core nodes of ComfyUI {version} -> {args.output}")


if __name__ == "__main__":
    main()
