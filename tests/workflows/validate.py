"""Checks a workflow (UI or API format) against node declarations, the way ComfyUI reads it.

Declarations are ComfyUI's /object_info entries: ours are made from the node classes' INPUT_TYPES, the core
nodes' come from core_nodes.json (or a live ComfyUI). Both formats are read into one normal form,
{node id: Normal(type, widget values by name, links by input name)}, so a UI file and its API twin can be
compared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from magicinfinite_core.mini.bundle import EMBEDDED_BUNDLE_NAME
from nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CORE_TABLE = HERE / "core_nodes.json"
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
FRONTEND_ONLY = ("Note", "MarkdownNote")  # drawn by the frontend, never sent to the server
SEED_CONTROL = ("fixed", "increment", "decrement", "randomize")
# Our combo inputs that list a model folder (the core ones are marked {"files": folder} in the table).
OUR_FILE_INPUTS = {
    ("MagicInfiniteModelLoader", "dit_name"): "diffusion_models",
    ("MagicInfiniteModelLoader", "adapter_name"): "model_patches",
    ("MagicInfiniteLoraSelect", "lora_name"): "loras",
    ("MagicInfiniteAudioEncoderLoader", "audio_encoder_name"): "audio_encoders",
}
# Values of our file inputs that are not files.
OUR_FILE_CHOICES = {
    ("MagicInfiniteModelLoader", "dit_name"): (EMBEDDED_BUNDLE_NAME,),
    ("MagicInfiniteModelLoader", "adapter_name"): ("none",),
    ("MagicInfiniteAudioEncoderLoader", "audio_encoder_name"): (EMBEDDED_BUNDLE_NAME,),
}


@dataclass
class Normal:
    type: str
    widgets: dict[str, Any] = field(default_factory=dict)
    links: dict[str, tuple[str, int]] = field(default_factory=dict)  # input -> (source id, output index)


def our_declarations() -> dict[str, dict]:
    table = {}
    for name, cls in NODE_CLASS_MAPPINGS.items():
        spec = cls.INPUT_TYPES()
        table[name] = {
            "input": spec,
            "input_order": {section: list(inputs) for section, inputs in spec.items()},
            "output": list(cls.RETURN_TYPES),
            "output_name": list(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)),
            "output_node": bool(getattr(cls, "OUTPUT_NODE", False)),
            "display_name": NODE_DISPLAY_NAME_MAPPINGS.get(name, name),
        }
    return table


def core_table() -> dict:
    return json.loads(CORE_TABLE.read_text(encoding="utf-8"))


def declarations(core: dict[str, dict]) -> dict[str, dict]:
    return {**core, **our_declarations()}


def kind(spec: list) -> str:
    return "COMBO" if isinstance(spec[0], list) else spec[0]


def options(spec: list) -> dict:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def choices(spec: list) -> list:
    """The options of a combo, in either of ComfyUI's two notations."""
    return spec[0] if isinstance(spec[0], list) else options(spec).get("options", [])


def is_widget(spec: list) -> bool:
    return kind(spec) in WIDGET_TYPES and not options(spec).get("forceInput")


def ordered_inputs(decl: dict) -> list[tuple[str, str, list]]:
    return [(section, name, decl["input"][section][name])
            for section in ("required", "optional") for name in decl["input_order"].get(section, [])]


def file_folder(node_type: str, name: str, spec: list, core: dict[str, dict]) -> str | None:
    """The folder a combo lists files of, or None. Core file inputs are known from the table, also when
    `spec` comes from a live ComfyUI (which lists this machine's files instead)."""
    if (node_type, name) in OUR_FILE_INPUTS:
        return OUR_FILE_INPUTS[(node_type, name)]
    table_spec = core.get(node_type, {}).get("input", {})
    for section in ("required", "optional"):
        if name in table_spec.get(section, {}):
            return options(table_spec[section][name]).get("files")
    return options(spec).get("files")


def types_match(output_type: str, input_type: str) -> bool:
    if "*" in (output_type, input_type):
        return True
    return bool(set(output_type.split(",")) & set(input_type.split(",")))


def value_problem(node_type: str, name: str, spec: list, value: Any, core: dict[str, dict]) -> str | None:
    """Why `value` is not valid for the widget `name` (None when it is)."""
    where = f"{node_type}.{name}"
    folder = file_folder(node_type, name, spec, core)
    widget = kind(spec)
    limits = options(spec)
    if folder is not None:
        if value in OUR_FILE_CHOICES.get((node_type, name), ()):
            return None
        if not isinstance(value, str) or not value.strip():
            return f"{where}: expected a file name from {folder}, got {value!r}"
        if folder != "input" and not value.endswith(".safetensors"):
            return f"{where}: {value!r} is not a .safetensors file (only safetensors are loaded)"
        return None
    if widget == "COMBO":
        return None if value in choices(spec) else f"{where}: {value!r} is not one of {choices(spec)}"
    if widget == "BOOLEAN":
        return None if isinstance(value, bool) else f"{where}: expected true/false, got {value!r}"
    if widget == "STRING":
        return None if isinstance(value, str) else f"{where}: expected text, got {value!r}"
    numeric = (int,) if widget == "INT" else (int, float)
    if isinstance(value, bool) or not isinstance(value, numeric):
        return f"{where}: expected {widget}, got {value!r}"
    if "min" in limits and value < limits["min"] or "max" in limits and value > limits["max"]:
        return f"{where}: {value} is outside [{limits.get('min')}, {limits.get('max')}]"
    return None


def _check_node(node_id: str, node: Normal, decls: dict[str, dict], core: dict[str, dict],
                outputs_of: dict[str, list[str]]) -> list[str]:
    decl = decls[node.type]
    problems = []
    declared = {name: (section, spec) for section, name, spec in ordered_inputs(decl)}
    for name in set(node.widgets) | set(node.links):
        if name not in declared:
            problems.append(f"node {node_id} {node.type}: no input named {name!r}")
    for name, (section, spec) in declared.items():
        if name in node.links:
            source, slot = node.links[name]
            if source not in outputs_of:
                problems.append(f"node {node_id} {node.type}.{name}: linked to missing node {source}")
                continue
            if not 0 <= slot < len(outputs_of[source]):
                problems.append(f"node {node_id} {node.type}.{name}: node {source} has no output {slot}")
                continue
            output_type = outputs_of[source][slot]
            if not types_match(output_type, kind(spec)):
                problems.append(f"node {node_id} {node.type}.{name}: takes {kind(spec)}, linked to "
                                f"{output_type} (node {source} output {slot})")
        elif name in node.widgets and is_widget(spec):
            problem = value_problem(node.type, name, spec, node.widgets[name], core)
            if problem:
                problems.append(f"node {node_id} {problem}")
        elif section == "required":
            problems.append(f"node {node_id} {node.type}: required input {name!r} is missing")
    return problems


def check_graph(graph: dict[str, Normal], decls: dict[str, dict], core: dict[str, dict]) -> list[str]:
    unknown = [f"node {i}: unknown node type {n.type!r}" for i, n in graph.items() if n.type not in decls]
    if unknown:
        return unknown
    outputs_of = {node_id: decls[node.type]["output"] for node_id, node in graph.items()}
    problems = []
    for node_id, node in graph.items():
        problems += _check_node(node_id, node, decls, core, outputs_of)
    return problems


def from_api(prompt: dict) -> dict[str, Normal]:
    graph = {}
    for node_id, node in prompt.items():
        normal = Normal(node["class_type"])
        for name, value in node["inputs"].items():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                normal.links[name] = (value[0], value[1])
            else:
                normal.widgets[name] = value
        graph[str(node_id)] = normal
    return graph


def _widget_slots(decl: dict) -> list[tuple[str | None, str]]:
    """What each widgets_values entry of a UI node holds, in order: (input name, "value"), (None, "seed
    control") after a seed, (None, "upload") for the upload buttons the frontend adds after the required
    inputs of a node that uploads images, videos (one value) or audio (two values)."""
    slots: list[tuple[str | None, str]] = []
    uploads: list[tuple[str | None, str]] = []
    for section, name, spec in ordered_inputs(decl):
        if not is_widget(spec):
            continue
        if section == "optional" and uploads:
            slots, uploads = slots + uploads, []
        slots.append((name, "value"))
        flags = options(spec)
        if name in ("seed", "noise_seed") or flags.get("control_after_generate"):
            slots.append((None, "seed control"))
        if flags.get("image_upload") or flags.get("video_upload"):
            uploads = [(None, "upload")]
        elif flags.get("audio_upload"):
            uploads = [(None, "upload"), (None, "upload")]
    return slots + uploads


def from_ui(workflow: dict, decls: dict[str, dict]) -> tuple[dict[str, Normal], list[str]]:
    """The graph a UI workflow sends (notes left out), and what is inconsistent in the file itself."""
    problems: list[str] = []
    nodes = {node["id"]: node for node in workflow["nodes"] if node["type"] not in FRONTEND_ONLY}
    links = {link[0]: link for link in workflow["links"]}
    graph: dict[str, Normal] = {}
    for node_id, node in nodes.items():
        normal = Normal(node["type"])
        graph[str(node_id)] = normal
        decl = decls.get(node["type"])
        if decl is None:
            continue
        declared = dict((name, spec) for _, name, spec in ordered_inputs(decl))
        slots = _widget_slots(decl)
        values = node.get("widgets_values") or []
        if len(values) != len(slots):
            problems.append(f"node {node_id} {node['type']}: {len(values)} widget values, its widgets "
                            f"take {len(slots)}")
        for (name, role), value in zip(slots, values, strict=False):
            if name is not None:
                normal.widgets[name] = value
            elif role == "seed control" and value not in SEED_CONTROL:
                problems.append(f"node {node_id}: seed control {value!r} is not one of {SEED_CONTROL}")
        for slot, entry in enumerate(node.get("inputs", [])):
            name = entry["name"]
            if name not in declared:
                problems.append(f"node {node_id} {node['type']}: input slot {name!r} is not declared")
                continue
            if entry["type"] != kind(declared[name]):
                problems.append(f"node {node_id} {node['type']}.{name}: slot type {entry['type']} but "
                                f"declared {kind(declared[name])}")
            if entry.get("link") is None:
                continue
            link = links.get(entry["link"])
            if link is None or link[3] != node_id or link[4] != slot:
                problems.append(f"node {node_id} {node['type']}.{name}: link {entry['link']} does not "
                                "end at this slot")
                continue
            normal.links[name] = (str(link[1]), link[2])
            normal.widgets.pop(name, None)  # a linked widget takes the link's value
        outputs = node.get("outputs", [])
        if [o["type"] for o in outputs] != list(decl["output"]):
            problems.append(f"node {node_id} {node['type']}: outputs {[o['type'] for o in outputs]}, "
                            f"declared {decl['output']}")
    for link_id, source, slot, target, target_slot, link_type in links.values():
        if source not in nodes or target not in nodes:
            problems.append(f"link {link_id}: joins a missing node ({source} -> {target})")
            continue
        outputs = nodes[source].get("outputs", [])
        if slot >= len(outputs) or link_id not in (outputs[slot].get("links") or []):
            problems.append(f"link {link_id}: not listed by output {slot} of node {source}")
        elif outputs[slot]["type"] != link_type:
            problems.append(f"link {link_id}: typed {link_type}, output {slot} of node {source} is "
                            f"{outputs[slot]['type']}")
        if target_slot >= len(nodes[target].get("inputs", [])):
            problems.append(f"link {link_id}: node {target} has no input slot {target_slot}")
    return graph, problems


def check_workflow(path: Path, decls: dict[str, dict], core: dict[str, dict]) -> list[str]:
    """Every problem of a workflow file, UI or API format."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if "nodes" in data:
        graph, problems = from_ui(data, decls)
    else:
        graph, problems = from_api(data), []
    return problems + check_graph(graph, decls, core)


def reaches_output(graph: dict[str, Normal], decls: dict[str, dict]) -> set[str]:
    """Ids of the nodes ComfyUI runs: output nodes and everything they depend on."""
    done: set[str] = set()
    todo = [i for i, n in graph.items() if decls[n.type].get("output_node")]
    while todo:
        node_id = todo.pop()
        if node_id not in done:
            done.add(node_id)
            todo += [source for source, _ in graph[node_id].links.values()]
    return done
