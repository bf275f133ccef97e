from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from comfyui_docker.workflows.templates import TemplateLibrary

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "comfyui-samples"
GROUND_TRUTH = SAMPLES / "templates-api"


@pytest.fixture(scope="session")
def object_info() -> dict[str, Any]:
    """The full GET /object_info of the ComfyUI 0.33 server that produced the ground truth."""
    path = SAMPLES / "object_info.json.gz"
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    return json.loads(gzip.decompress(path.read_bytes()))


@pytest.fixture(scope="session")
def library() -> TemplateLibrary:
    return TemplateLibrary()
