"""The shipped workflows load in ComfyUI as they are: node types exist, links join matching types, widget
values are valid for their inputs, UI and API files describe the same graph, every node leads to an output,
and each UI file's note lists the model files it needs and their folders.

Our nodes are checked against their INPUT_TYPES / RETURN_TYPES, ComfyUI's core nodes against
core_nodes.json (scripts/dump_core_nodes.py) and, when COMFYUI_DIR is set, against a live ComfyUI too.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from tests.host.checkout import requires_comfyui
from tests.workflows import validate

WORKFLOWS = validate.ROOT / "workflows"
UI_FILES = sorted(WORKFLOWS.glob("*.json"))
API_FILES = sorted((WORKFLOWS / "api").glob("*.json"))
CORE = validate.core_table()["nodes"]
DECLS = validate.declarations(CORE)


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def api_graph(path: Path) -> dict[str, validate.Normal]:
    return validate.from_api(load(path))


def ui_graph(path: Path) -> dict[str, validate.Normal]:
    graph, problems = validate.from_ui(load(path), DECLS)
    assert problems == []
    return graph


def nodes_of(graph: dict[str, validate.Normal], node_type: str) -> list[validate.Normal]:
    return [node for node in graph.values() if node.type == node_type]


def test_ui_and_api_files_come_in_pairs() -> None:
    assert len(UI_FILES) >= 5
    assert [p.name for p in UI_FILES] == [p.name for p in API_FILES]


@pytest.mark.parametrize("path", UI_FILES + API_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_workflow_is_valid_for_the_declared_nodes(path: Path) -> None:
    assert validate.check_workflow(path, DECLS, CORE) == []


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.name)
def test_the_api_file_is_the_same_graph_as_the_ui_file(path: Path) -> None:
    assert ui_graph(path) == api_graph(WORKFLOWS / "api" / path.name)


@pytest.mark.parametrize("path", API_FILES, ids=lambda p: p.name)
def test_every_node_leads_to_an_output_node(path: Path) -> None:
    graph = api_graph(path)
    assert validate.reaches_output(graph, DECLS) == set(graph)
    assert nodes_of(graph, "MagicInfiniteSaveVideo"), "the video is saved with the workflow embedded"


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.name)
def test_the_note_lists_every_model_file_with_its_folder(path: Path) -> None:
    workflow = load(path)
    notes = [n for n in workflow["nodes"] if n["type"] in validate.FRONTEND_ONLY]
    assert len(notes) == 1
    text = notes[0]["widgets_values"][0]
    files = set()
    for node in ui_graph(path).values():
        for _, name, spec in validate.ordered_inputs(DECLS[node.type]):
            folder = validate.file_folder(node.type, name, spec, CORE)
            value = node.widgets.get(name)
            not_a_file = value in validate.OUR_FILE_CHOICES.get((node.type, name), ())
            if folder and folder != "input" and not not_a_file:
                files.add(f"models/{folder}/{value}")
    assert [f for f in sorted(files) if f not in text] == []
    if not files:  # only the embedded model
        assert "None to download" in text


def test_the_core_table_covers_every_core_node_used() -> None:
    used = {node.type for path in API_FILES for node in api_graph(path).values()}
    core_used = {t for t in used if not t.startswith("MagicInfinite")}
    assert core_used <= set(CORE), "run scripts/dump_core_nodes.py against a running ComfyUI"
    assert validate.core_table()["comfyui_version"]


# ---------------------------------------------------------------------------------------------- coverage

def sampler_of(path: Path) -> validate.Normal:
    (sampler,) = nodes_of(api_graph(path), "MagicInfiniteSampler")
    return sampler


def adapter_of(graph: dict[str, validate.Normal]) -> str:
    (loader,) = nodes_of(graph, "MagicInfiniteModelLoader")
    return loader.widgets["adapter_name"]


def test_one_speaker_4_step_distilled() -> None:
    found = [p for p in API_FILES
             if sampler_of(p).widgets["sampler"] == "distilled" and sampler_of(p).widgets["steps"] == 4
             and nodes_of(api_graph(p), "MagicInfiniteLoraSelect") and "single" in adapter_of(api_graph(p))
             and "audio_2" not in nodes_of(api_graph(p), "MagicInfiniteAudioEmbed")[0].links]
    assert found


def test_video_to_video_dubbing_takes_the_frames_and_fps_of_a_source_video() -> None:
    found = []
    for path in API_FILES:
        graph = api_graph(path)
        for parts_id, node in graph.items():
            if node.type != "GetVideoComponents":
                continue
            sampler = sampler_of(path)
            (embed,) = nodes_of(graph, "MagicInfiniteAudioEmbed")
            if sampler.links["image"] == (parts_id, 0) and embed.links.get("fps") == (parts_id, 2):
                found.append(path)
    assert found


def test_two_speakers_with_masks() -> None:
    found = []
    for path in API_FILES:
        graph = api_graph(path)
        regions = nodes_of(graph, "MagicInfiniteRegionMasks")
        masked = regions and {"mask_1", "mask_2"} <= set(regions[0].links)
        if masked and regions[0].widgets["num_speakers"] == 2:
            (embed,) = nodes_of(graph, "MagicInfiniteAudioEmbed")
            assert {"audio_1", "audio_2"} <= set(embed.links)
            assert "regions" in sampler_of(path).links and "multi" in adapter_of(graph)
            found.append(path)
    assert found


def test_a_long_video_streamed_to_a_file_and_saved_from_it() -> None:
    found = []
    for path in API_FILES:
        graph = api_graph(path)
        sampler_id = next(i for i, n in graph.items() if n.type == "MagicInfiniteSampler")
        if graph[sampler_id].widgets["output"] == "file":
            (save,) = nodes_of(graph, "MagicInfiniteSaveVideo")
            assert save.links["video_file"] == (sampler_id, 3)
            found.append(path)
    assert found
    note = next(n for n in load(WORKFLOWS / found[0].name)["nodes"] if n["type"] in validate.FRONTEND_ONLY)
    assert "5 minutes" in note["widgets_values"][0]


def test_base_model_with_text_and_audio_cfg() -> None:
    found = [p for p in API_FILES
             if not nodes_of(api_graph(p), "MagicInfiniteLoraSelect")
             and sampler_of(p).widgets["text_cfg"] > 1 and sampler_of(p).widgets["audio_cfg"] > 1
             and sampler_of(p).widgets["sampler"] != "distilled" and sampler_of(p).widgets["steps"] >= 20
             and "negative" in nodes_of(api_graph(p), "MagicInfiniteTextConditioning")[0].links]
    assert found


# ---------------------------------------------------------------------------------------------- the checker

@pytest.fixture
def one_speaker() -> tuple[dict, dict]:
    name = "magicinfinite_one_speaker_distilled_4step.json"
    return load(WORKFLOWS / name), load(WORKFLOWS / "api" / name)


def problems_of(data: dict, tmp_path: Path) -> list[str]:
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return validate.check_workflow(path, DECLS, CORE)


def api_node(prompt: dict, node_type: str) -> dict:
    return next(n for n in prompt.values() if n["class_type"] == node_type)


def ui_node(workflow: dict, node_type: str) -> dict:
    return next(n for n in workflow["nodes"] if n["type"] == node_type)


@pytest.mark.parametrize(("node_type", "name", "value", "message"), [
    ("MagicInfiniteSampler", "sampler", "unipc", "is not one of"),
    ("MagicInfiniteSampler", "steps", 0, "outside"),
    ("MagicInfiniteSampler", "width", 832.5, "expected INT"),
    ("MagicInfiniteAudioEmbed", "normalize_loudness", "yes", "expected true/false"),
    ("MagicInfiniteModelLoader", "dit_name", "wan2.1_i2v_480p_14B.pt", "not a .safetensors file"),
    ("CLIPLoader", "type", "umt5", "is not one of"),
    ("CLIPVisionEncode", "crop", "middle", "is not one of"),
])
def test_the_checker_reports_a_bad_widget_value(one_speaker, tmp_path, node_type, name, value,
                                                message) -> None:
    _, prompt = one_speaker
    api_node(prompt, node_type)["inputs"][name] = value
    assert any(message in p for p in problems_of(prompt, tmp_path))


def test_the_checker_reports_a_link_of_the_wrong_type(one_speaker, tmp_path) -> None:
    _, prompt = one_speaker
    sampler = api_node(prompt, "MagicInfiniteSampler")
    sampler["inputs"]["vae"] = copy.deepcopy(sampler["inputs"]["model"])  # MI_MODEL into VAE
    assert any("takes VAE, linked to MI_MODEL" in p for p in problems_of(prompt, tmp_path))


def test_the_checker_reports_missing_inputs_unknown_inputs_and_unknown_nodes(one_speaker, tmp_path) -> None:
    _, prompt = one_speaker
    del api_node(prompt, "MagicInfiniteSampler")["inputs"]["audio"]
    api_node(prompt, "MagicInfiniteSaveVideo")["inputs"]["codec"] = "h264"
    problems = problems_of(prompt, tmp_path)
    assert any("required input 'audio' is missing" in p for p in problems)
    assert any("no input named 'codec'" in p for p in problems)
    api_node(prompt, "VAELoader")["class_type"] = "WanVAELoader"
    assert any("unknown node type 'WanVAELoader'" in p for p in problems_of(prompt, tmp_path))


def test_the_checker_reports_shifted_ui_widget_values(one_speaker, tmp_path) -> None:
    workflow, _ = one_speaker
    sampler = ui_node(workflow, "MagicInfiniteSampler")
    sampler["widgets_values"].remove("fixed")  # the seed's control value: every later value shifts
    problems = problems_of(workflow, tmp_path)
    assert any("widget values, its widgets take" in p for p in problems)


def test_the_checker_reports_a_ui_link_that_does_not_match_its_slots(one_speaker, tmp_path) -> None:
    workflow, _ = one_speaker
    link = workflow["links"][0]
    link[5] = "LATENT"
    assert any(f"link {link[0]}: typed LATENT" in p for p in problems_of(workflow, tmp_path))


def test_the_api_twin_comparison_sees_a_changed_value(one_speaker) -> None:
    workflow, prompt = one_speaker
    api_node(prompt, "MagicInfiniteSampler")["inputs"]["seed"] = 7
    graph, _ = validate.from_ui(workflow, DECLS)
    assert graph != validate.from_api(prompt)


# ---------------------------------------------------------------------------------------------- live ComfyUI

@pytest.fixture(scope="module")
def object_info() -> dict:
    from tests.host.comfyui_server import shared_server

    return shared_server().get_json("/object_info")


@requires_comfyui
class TestAgainstLiveComfyUI:
    def test_our_nodes_are_listed_as_declared(self, object_info) -> None:
        ours = validate.our_declarations()
        for name, decl in ours.items():
            live = object_info[name]
            assert live["output"] == decl["output"] and live["input_order"] == decl["input_order"], name

    def test_the_core_table_matches_the_live_declarations(self, object_info) -> None:
        for name, decl in CORE.items():
            live = object_info[name]
            assert live["output"] == decl["output"] and live["input_order"] == decl["input_order"], name
            for section, name_, spec in validate.ordered_inputs(decl):
                live_spec = live["input"][section][name_]
                assert validate.kind(live_spec) == validate.kind(spec), f"{name}.{name_}"
                if validate.kind(spec) == "COMBO" and "files" not in validate.options(spec):
                    assert validate.choices(live_spec) == validate.choices(spec), f"{name}.{name_}"

    @pytest.mark.parametrize("path", UI_FILES + API_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
    def test_workflow_is_valid_for_the_live_declarations(self, object_info, path: Path) -> None:
        assert validate.check_workflow(path, object_info, CORE) == []


def test_shipped_files_are_what_the_builder_makes_from_the_current_declarations() -> None:
    """A node, default or bundle change that the files miss (e.g. a stale model note) fails here."""
    script = validate.ROOT / "scripts" / "build_workflows.py"
    spec = importlib.util.spec_from_file_location("build_workflows", script)
    builder = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = builder  # its dataclasses look their module up while being defined
    try:
        spec.loader.exec_module(builder)
        files = builder.rendered()
    finally:
        del sys.modules[spec.name]
    stale = [str(path.relative_to(validate.ROOT)) for path, text in files.items()
             if not path.is_file() or path.read_text(encoding="utf-8") != text]
    assert not stale, f"rerun python scripts/build_workflows.py: {stale}"
