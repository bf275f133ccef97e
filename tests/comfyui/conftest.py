"""Fixtures: one ComfyUI per module — the fake, and (opt-in) a real one named by COMFYUI_ROOT."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.comfyui_root.launch import FAKE_ROOT, Comfy, real_comfyui_root, run_comfyui


@pytest.fixture(
    scope="module",
    params=[pytest.param("fake", id="fake"), pytest.param("real", id="real", marks=pytest.mark.real_comfyui)],
)
def comfy(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Comfy]:
    """A running ComfyUI with the samples' basic layout (fresh per test module)."""
    if request.param == "real":
        root, why = real_comfyui_root()
        if root is None:
            pytest.skip(f"real ComfyUI: {why}")
        timeout = 120.0
    else:
        root, timeout = FAKE_ROOT, 30.0
    base = tmp_path_factory.mktemp(f"comfy-{request.param}")
    with run_comfyui(base, root=root, timeout=timeout) as running:
        yield running
