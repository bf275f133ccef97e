"""The image probe and the package layer: its key, the hook (after site-packages: the image wins),
the constraints that pin the image, and real pip with `--prefix` installing only what is missing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from comfyui_docker.nodes.image import LAYER_VARIABLE, parse_dists, probe
from comfyui_docker.nodes.layer import HOOK_NAME, HOOK_TEXT, Layer, NodeRecord, ensure_hook
from comfyui_docker.nodes.pip import explain, pip_install

from .kit import make_wheel


def test_parse_dists_reads_names_and_versions_from_folder_names() -> None:
    found = parse_dists(
        [
            "torch-2.9.1+cu128.dist-info",
            "nvidia_cublas_cu12-12.8.4.1.dist-info",
            "PyYAML-6.0.2.dist-info",
            "pyyaml-5.0.dist-info",  # a second copy later on sys.path: the first wins
            "setuptools-65.5.0-py3.11.egg-info",
            "mypackage.egg-info",  # a develop install without a version: nothing to pin
        ]
    )
    assert found == {
        "torch": "2.9.1+cu128",
        "nvidia-cublas-cu12": "12.8.4.1",
        "pyyaml": "6.0.2",
        "setuptools": "65.5.0",
    }


async def test_probe_names_the_layer_by_python_and_torch(image_python: Path) -> None:
    image = await probe(image_python)
    assert image.tag.startswith("cp3") and image.torch == "2.9.1"
    assert image.key == f"{image.tag}-torch2.9.1"
    assert image.packages["tinydep"] == "1.0" and "aiohttp" in image.packages  # the project venv via .pth
    assert image.layer_site(Path("/L")) == Path(
        f"/L/lib/python{image.version.rsplit('.', 1)[0]}/site-packages"
    )


async def test_probe_of_a_python_that_does_not_run(tmp_path: Path) -> None:
    from comfyui_docker.errors import AppError

    with pytest.raises(AppError, match="cannot run ComfyUI's Python"):
        await probe(tmp_path / "no-python")


def _sys_path(python: Path, layer: Layer | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != LAYER_VARIABLE}
    if layer is not None:
        env[LAYER_VARIABLE] = str(layer.site)
    code = "import json, sys, tinydep; print(json.dumps([sys.path, tinydep.__file__]))"
    out = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True, env=env)
    return list(json.loads(out.stdout))


async def test_hook_appends_the_layer_after_site_packages_so_the_image_wins(
    tmp_path: Path, image_python: Path
) -> None:
    image = await probe(image_python)
    assert ensure_hook(image) is None
    assert (image.purelib / HOOK_NAME).read_text() == HOOK_TEXT
    assert ensure_hook(image) is None  # already there: nothing rewritten
    layer = Layer(tmp_path / "python", image)
    layer.ensure()
    # the layer has its own tinydep 2.0; the image's 1.0 must still be the one imported
    shadow = layer.site / "tinydep"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("VERSION = '2.0'\n")
    path, imported = _sys_path(image_python, layer)
    assert path[-1] == str(layer.site) and path.index(str(image.purelib)) < path.index(str(layer.site))
    assert imported.startswith(str(image.purelib))
    path, _ = _sys_path(image_python, None)
    assert str(layer.site) not in path  # without the variable the hook does nothing


async def test_constraints_pin_every_image_package_but_the_build_tools(
    tmp_path: Path, image_python: Path
) -> None:
    image = await probe(image_python)
    extra = image_python.parent.parent.parent / "constraints.txt"  # the image's own, beside the venv
    extra.write_text("# the image's\nopencv-python==4.12.0.88\n")
    try:
        layer = Layer(tmp_path / "python", image)
        layer.ensure()
        lines = layer.constraints.read_text().splitlines()
    finally:
        extra.unlink()
    assert "torch==2.9.1" in lines and "tinydep==1.0" in lines and "opencv-python==4.12.0.88" in lines
    assert not any(line.startswith(("pip==", "setuptools==")) for line in lines)
    assert layer.constraints.name == f"constraints-{image.fingerprint}.txt"


async def test_state_round_trip_and_environment(tmp_path: Path, image_python: Path) -> None:
    layer = Layer(tmp_path / "python", await probe(image_python))
    assert layer.is_new and layer.read_state() == {}
    layer.record("a", NodeRecord(hash="h1", ok=True))
    layer.record("b", NodeRecord(hash="h2", ok=False, error="boom", conflict=True))
    layer.record("a", None)
    state = layer.read_state()
    assert list(state) == ["b"] and state["b"].conflict and state["b"].error == "boom" and not layer.is_new
    layer.state_path.write_text("{not json")
    assert layer.read_state() == {}  # a broken file is an empty state, not a crash
    env = layer.environment({"PATH": "/venv/bin:/usr/bin", "X": "1"})
    assert env["PATH"].split(":") == ["/venv/bin", "/usr/bin", str(layer.bin)]
    assert env[LAYER_VARIABLE] == str(layer.site) and env["PIP_PREFIX"] == str(layer.root)
    assert env["PIP_CONSTRAINT"] == env["UV_CONSTRAINT"] == str(layer.constraints) and env["X"] == "1"


async def test_pip_installs_only_what_is_missing_into_the_layer(
    tmp_path: Path, image_python: Path, offline: dict[str, str], wheels: Path
) -> None:
    image = await probe(image_python)
    ensure_hook(image)
    layer = Layer(tmp_path / "python", image)
    req = tmp_path / "requirements.txt"
    req.write_text("nodepkg\n")
    lines: list[str] = []
    result = await pip_install(layer, [req], on_line=lines.append, timeout=120)
    assert result.ok, result.tail
    names = sorted(p.name for p in layer.site.iterdir() if p.name.endswith(".dist-info"))
    assert names == ["nodepkg-2.0.dist-info"]  # tinydep was already in the image: not reinstalled
    assert any("tinydep" in line and "already satisfied" in line for line in lines)
    assert (image.purelib / "tinydep-1.0.dist-info").is_dir()  # the image untouched


async def test_pip_refuses_a_conflict_with_the_image_and_installs_nothing(
    tmp_path: Path, image_python: Path, offline: dict[str, str]
) -> None:
    layer = Layer(tmp_path / "python", await probe(image_python))
    req = tmp_path / "requirements.txt"
    req.write_text("otherpkg\nwantstorch\n")
    result = await pip_install(layer, [req], timeout=120)
    assert not result.ok and not result.timed_out
    assert any("torch==2.0.0" in c for c in result.conflict) and any(
        "torch==2.9.1" in c for c in result.conflict
    )
    assert "conflicts with the image's packages" in result.message
    assert not any(layer.site.iterdir())  # otherpkg was not installed either: pip resolves first
    req.write_text("tinydep>=2\n")  # the image has 1.0: an upgrade is a conflict, not a silent shadow
    result = await pip_install(layer, [req], timeout=120)
    assert any("tinydep" in c for c in result.conflict)
    assert not any(layer.site.iterdir())


async def test_pip_failures_are_one_line_a_user_can_act_on(
    tmp_path: Path, image_python: Path, offline: dict[str, str]
) -> None:
    layer = Layer(tmp_path / "python", await probe(image_python))
    req = tmp_path / "requirements.txt"
    req.write_text("no-such-package-xyz\n")
    result = await pip_install(layer, [req], timeout=120)
    assert not result.ok and "no-such-package-xyz" in result.error and not result.conflict
    assert explain(["/x/python: No module named pip"], 1).error.startswith("ComfyUI's Python has no pip")


async def test_pip_past_its_time_bound_is_stopped(
    tmp_path: Path, image_python: Path, offline: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = Layer(tmp_path / "python", await probe(image_python))
    req = tmp_path / "requirements.txt"
    req.write_text("slowpkg\n")
    # a find-links "server" that never answers: pip waits on it until our bound stops it
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        monkeypatch.setenv("PIP_FIND_LINKS", f"http://127.0.0.1:{port}/")
        result = await pip_install(layer, [req], timeout=3)
    assert result.timed_out and not result.ok and "did not finish in 3 s" in result.error
    assert not any(layer.site.iterdir())


async def test_an_upgrade_inside_the_layer_leaves_one_version(
    tmp_path: Path, image_python: Path, offline: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    wheels = tmp_path / "upg"
    make_wheel(wheels, "upg", "1.0", modules={"upg/__init__.py": "V = 1\n", "upg/gone.py": "X = 1\n"})
    make_wheel(wheels, "upg", "2.0", modules={"upg/__init__.py": "V = 2\n"})
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    image = await probe(image_python)
    ensure_hook(image)
    layer = Layer(tmp_path / "python", image)
    req = tmp_path / "requirements.txt"
    req.write_text("upg==1.0\n")
    assert (await pip_install(layer, [req], timeout=120)).ok
    req.write_text("upg==2.0\n")
    result = await pip_install(layer, [req], timeout=120)
    assert result.ok and "removed upg-1.0 from the layer (replaced by a newer version)" in result.tail
    assert sorted(p.name for p in layer.site.iterdir()) == ["upg", "upg-2.0.dist-info"]
    assert not (layer.site / "upg" / "gone.py").exists()
    env = {**os.environ, LAYER_VARIABLE: str(layer.site)}
    code = "from importlib.metadata import version; import upg; print(version('upg'), upg.V)"
    out = subprocess.run([str(image_python), "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["2.0", "2"]
