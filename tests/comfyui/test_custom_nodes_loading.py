"""Custom nodes as ComfyUI 0.33 loads them, the fake and (opt-in) the real one alike: a second
custom-node folder from the yaml (`is_default`: first in the list), a node that fails to import
(ComfyUI still starts; the log names it and the exception), `--disable-all-custom-nodes` with
`--whitelist-custom-nodes`, and a loaded node's class in /object_info."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from comfyui_docker.nodes.imports import parse
from comfyui_docker.supervisor.logcapture import strip_ansi
from fakes.comfyui_root.launch import FAKE_ROOT, Comfy, http, real_comfyui_root, run_comfyui

GOOD = """\
class VolumeGood:
    DESCRIPTION = "from the volume"
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 1})}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "tests"
    def run(self, value):
        return (value,)
NODE_CLASS_MAPPINGS = {"VolumeGood": VolumeGood}
"""


def _layout(base: Path) -> tuple[Path, Path]:
    nodes = base / "custom_nodes"
    skipped = GOOD.replace("VolumeGood", "VolumeSkipped")
    for name, text in (("good", GOOD), ("bad", "import not_a_module_xyz\n"), ("skipped", skipped)):
        (nodes / name).mkdir(parents=True)
        (nodes / name / "__init__.py").write_text(text)
    (nodes / "notes.txt").write_text("not a node")
    yaml = base / "nodes.yaml"
    yaml.write_text(f"volume_nodes:\n  is_default: true\n  custom_nodes: {nodes}\n")
    return nodes, yaml


@pytest.fixture(
    scope="module",
    params=[pytest.param("fake", id="fake"), pytest.param("real", id="real", marks=pytest.mark.real_comfyui)],
)
def started(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Comfy, Path]]:
    if request.param == "real":
        root, why = real_comfyui_root()
        if root is None:
            pytest.skip(f"real ComfyUI: {why}")
        timeout = 120.0
    else:
        root, timeout = FAKE_ROOT, 30.0
    base = tmp_path_factory.mktemp(f"nodes-{request.param}")
    nodes, yaml = _layout(base)
    args = [
        "--cpu",
        "--database-url",
        f"sqlite:///{base}/db.sqlite",
        "--disable-all-custom-nodes",
        "--whitelist-custom-nodes",
        "good",
        "bad",
        "websocket_image_save.py",
    ]
    basic = base / "comfy" / "config" / "extra_model_paths.yaml"  # run_comfyui's Layout writes it
    with run_comfyui(
        base / "comfy", root=root, extra_args=args, yamls=[basic, yaml], timeout=timeout
    ) as running:
        yield running, nodes


def test_a_failing_node_does_not_stop_comfyui_and_is_named_in_the_log(started: tuple[Comfy, Path]) -> None:
    comfy, nodes = started
    report = parse([strip_ansi(line) for line in comfy.log().splitlines()])
    assert report.found
    assert report.results[str(nodes / "good")].ok
    bad = report.results[str(nodes / "bad")]
    assert not bad.ok and bad.error == "No module named 'not_a_module_xyz'"
    assert any("ModuleNotFoundError" in line for line in bad.traceback)
    assert str(nodes / "skipped") not in report.results  # not whitelisted: not even tried
    assert "Skipping skipped due to disable_all_custom_nodes and whitelist_custom_nodes" in strip_ansi(
        comfy.log()
    )


def test_a_loaded_volume_node_is_in_object_info(started: tuple[Comfy, Path]) -> None:
    comfy, _ = started
    status, _, body = http("GET", f"{comfy.url}/object_info/VolumeGood")
    entry = json.loads(body)["VolumeGood"]
    assert (
        status == 200
        and entry["description"] == "from the volume"
        and entry["python_module"] == "custom_nodes.good"
    )
    assert entry["input"]["required"]["value"] == ["INT", {"default": 1}] and entry["output"] == ["INT"]
    assert json.loads(http("GET", f"{comfy.url}/object_info/VolumeSkipped")[2]) == {}
    folders = json.loads(http("GET", f"{comfy.url}/internal/folder_paths")[2])["custom_nodes"]
    assert folders[0] == str(started[1])  # is_default: first, where ComfyUI-Manager installs
