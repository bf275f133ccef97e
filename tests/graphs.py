"""API-format graphs the fake ComfyUI runs for a known time (tests/ is on sys.path: `import graphs`).

The fake runs ColorTransfer one progress step per frame, FAKE_COMFYUI_STEP_SECONDS each (0.01 s by
default). Give each prompt its own `color`: a graph that once finished is answered from ComfyUI's
cache without running again.
"""

from __future__ import annotations

from typing import Any


def slow(frames: int, color: int = 7, *, save: str | None = None, size: int = 8) -> dict[str, Any]:
    """EmptyImage(frames, `size` pixels square) -> ColorTransfer (one step per frame) ->
    PreviewImage, or SaveImage with the prefix `save`."""
    out: dict[str, Any] = (
        {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": save}}
        if save
        else {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}}
    )
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": size, "height": size, "batch_size": frames, "color": color},
        },
        "2": {
            "class_type": "EmptyImage",
            "inputs": {"width": size, "height": size, "batch_size": 1, "color": 1},
        },
        "3": {
            "class_type": "ColorTransfer",
            "_meta": {"title": "Slow"},
            "inputs": {
                "image_target": ["1", 0],
                "image_ref": ["2", 0],
                "method": "mkl_lab",
                "source_stats": "per_frame",
                "strength": 1.0,
            },
        },
        "4": out,
    }


def quick(color: int, prefix: str = "multi/q") -> dict[str, Any]:
    """EmptyImage -> SaveImage: done in milliseconds, one file under output/."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": color},
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    }
