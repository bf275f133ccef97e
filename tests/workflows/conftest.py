from __future__ import annotations

from typing import Any

import pytest

from comfy_samples import object_info as recorded_object_info
from comfyui_docker.workflows.templates import TemplateLibrary


@pytest.fixture(scope="session")
def object_info() -> dict[str, Any]:
    """The full GET /object_info of the ComfyUI 0.33 server that produced the ground truth."""
    return recorded_object_info()


@pytest.fixture(scope="session")
def library() -> TemplateLibrary:
    return TemplateLibrary()
