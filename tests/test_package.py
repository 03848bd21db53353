"""Comfy Registry readiness: the pack imports the way ComfyUI imports it (no ComfyUI, not pip-installed,
beside ComfyUI's own top-level `nodes` module) and declares every node completely; pyproject carries the
registry fields; the sources run no code from strings and install nothing at run time; requirements.txt
leaves torch to the host."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import magicinfinite_core
from nodes import NODE_CLASS_MAPPINGS

ROOT = Path(__file__).resolve().parents[1]
PACK_SOURCES = sorted([ROOT / "__init__.py", *(ROOT / "nodes").rglob("*.py"),
                       *(ROOT / "magicinfinite_core").rglob("*.py")])

# Run in a fresh interpreter: load the pack folder as ComfyUI's load_custom_node does, with the editable
# install's finder removed (a user's custom_nodes folder is not pip-installed) and a stand-in for ComfyUI's
# own nodes.py in sys.modules, then describe what ComfyUI would read from it.
_LOAD_AS_COMFYUI = r"""
import importlib.util, json, sys, types
from pathlib import Path

root = Path(sys.argv[1])
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
sys.modules["nodes"] = types.ModuleType("nodes")  # ComfyUI's nodes.py is imported before any custom node
hosts = [name for name in ("folder_paths", "comfy") if importlib.util.find_spec(name) is not None]

module_name = str(root).replace(".", "_x_")  # what ComfyUI names a custom node folder's module
spec = importlib.util.spec_from_file_location(module_name, root / "__init__.py")
pack = importlib.util.module_from_spec(spec)
sys.modules[module_name] = pack
spec.loader.exec_module(pack)

def describe(cls):
    spec = cls.INPUT_TYPES()
    inputs = {section: {name: {"kind": value[0] if isinstance(value[0], str) else "COMBO",
                               "tooltip": (value[1] if len(value) > 1 else {}).get("tooltip", "")}
                        for name, value in spec.get(section, {}).items()}
              for section in ("required", "optional")}
    return {"sections": sorted(spec), "inputs": inputs, "return_types": list(cls.RETURN_TYPES),
            "return_names": list(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)),
            "output_tooltips": list(getattr(cls, "OUTPUT_TOOLTIPS", cls.RETURN_TYPES)),
            "function": cls.FUNCTION, "has_function": callable(getattr(cls, cls.FUNCTION, None)),
            "category": cls.CATEGORY, "description": getattr(cls, "DESCRIPTION", ""),
            "output_node": bool(getattr(cls, "OUTPUT_NODE", False))}

print(json.dumps({
    "hosts": hosts,
    "engine_file": sys.modules["magicinfinite_core"].__file__,
    "nodes_module_untouched": not hasattr(sys.modules["nodes"], "NODE_CLASS_MAPPINGS"),
    "display_names": pack.NODE_DISPLAY_NAME_MAPPINGS,
    "nodes": {name: describe(cls) for name, cls in pack.NODE_CLASS_MAPPINGS.items()},
}))
"""


@pytest.fixture(scope="module")
def as_comfyui(tmp_path_factory) -> dict:
    run = subprocess.run([sys.executable, "-I", "-c", _LOAD_AS_COMFYUI, str(ROOT)], capture_output=True,
                         text=True, cwd=tmp_path_factory.mktemp("elsewhere"), timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_the_pack_imports_as_comfyui_loads_it_without_comfyui_or_pip(as_comfyui):
    assert as_comfyui["hosts"] == []  # no ComfyUI module was importable
    assert Path(as_comfyui["engine_file"]).is_relative_to(ROOT)  # found through the pack folder itself
    assert as_comfyui["nodes_module_untouched"]  # ComfyUI's `nodes` is not shadowed or changed
    assert set(as_comfyui["nodes"]) == set(NODE_CLASS_MAPPINGS)  # the same nodes as a plain import


def test_every_node_is_declared_completely_for_the_v1_api(as_comfyui):
    for name, node in as_comfyui["nodes"].items():
        assert name.startswith("MagicInfinite"), name
        assert node["category"].startswith("MagicInfinite/"), name
        assert node["has_function"], name
        assert node["return_types"] or node["output_node"], f"{name}: no outputs and not an output node"
        assert set(node["sections"]) <= {"required", "optional", "hidden"}, name
        assert len(node["return_names"]) == len(node["output_tooltips"]) == len(node["return_types"]), name
        assert node["description"], name
        for section in ("required", "optional"):  # hidden inputs are filled by the host, never shown
            for input_name, declared in node["inputs"][section].items():
                assert declared["tooltip"].strip(), f"{name}.{input_name} has no tooltip"


def test_every_node_has_a_display_name_and_no_display_name_is_orphaned(as_comfyui):
    names = as_comfyui["display_names"]
    assert set(names) == set(as_comfyui["nodes"])
    assert all(display.startswith("MagicInfinite ") for display in names.values())
    assert len(set(names.values())) == len(names)


def test_pyproject_has_the_registry_fields():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    project, comfy = pyproject["project"], pyproject["tool"]["comfy"]
    for field in ("name", "version", "description"):
        assert isinstance(project.get(field), str) and project[field].strip(), field
    assert project["version"] == magicinfinite_core.__version__
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", project["name"])  # the registry's node id
    assert project["urls"].get("Repository", "").startswith("https://")
    # An SPDX string (setuptools >= 77 reads it without deprecation warnings); the code needs 3.11 (tomllib).
    assert project["license"] == "Apache-2.0" and "setuptools>=77" in pyproject["build-system"]["requires"]
    assert project["requires-python"] == ">=3.11"
    for field in ("PublisherId", "DisplayName"):
        assert isinstance(comfy.get(field), str) and comfy[field].strip(), field


def _forbidden(path: Path, root: Path = ROOT) -> list[str]:
    """Calls that run code from strings, spawn processes or install packages, in one source file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in {
                "eval", "exec", "__import__"}:
            found.append(f"{where} {node.func.id}(")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in {
                "system", "popen", "spawnv", "execv", "execvp"}:
            found.append(f"{where} .{node.func.attr}(")
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{where} import {m}" for m in modules
                      if m.split(".")[0] in {"subprocess", "pip", "ensurepip", "pickle"}]
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.search(
                r"\bpip\s+install\b", node.value):
            found.append(f"{where} 'pip install' in a string")
    return found


def test_no_eval_exec_subprocess_or_pip_in_the_pack_sources():
    assert len(PACK_SOURCES) > 20
    assert [problem for path in PACK_SOURCES for problem in _forbidden(path)] == []


def test_the_forbidden_code_check_catches_what_it_looks_for(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import subprocess\nmodel.eval()\neval('1')\nos.system('pip install x')\n")
    problems = _forbidden(sample, tmp_path)
    assert [p.split(" ", 1)[1] for p in problems] == ["import subprocess", "eval(", ".system(",
                                                      "'pip install' in a string"]


def test_requirements_leave_torch_to_the_host():
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    requirements = [line for line in lines if line]
    names = {re.split(r"[<>=!~;\[ ]", line, maxsplit=1)[0].lower(): line for line in requirements}
    assert "torch" not in names  # ComfyUI owns torch; listing it lets pip swap the host's build
    for name in ("torchaudio", "torchvision"):
        assert "==" not in names.get(name, ""), f"{name} pinned: pip would replace the host's torch"
    assert {"safetensors", "av", "transformers"} <= set(names)
