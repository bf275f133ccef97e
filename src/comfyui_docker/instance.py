"""One ComfyUI process and what sets it apart from another on this machine (`Instance`): its
port, GPU, database, temp folder, log and service name. placement.py plans them from COMFYUI_GPUS;
children/comfyui.py supervises them; the gateway, health and Home read them. A leaf: it imports only
settings, so services.py can name it without a cycle."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from .settings import Settings


def database_path(port: int) -> Path:
    """ComfyUI's SQLite file on the container's own disk, keyed by its port (two never share one)."""
    return Path(tempfile.gettempdir()) / "comfyui-docker" / f"comfyui-{port}" / "comfyui.db"


@dataclass(frozen=True)
class Instance:
    """One ComfyUI process and what sets it apart from another one on this machine.

    placement.py makes them from COMFYUI_GPUS: GPU n's ComfyUI is `comfyui-n` (its log
    `comfyui-n.log`), on port COMFYUI_INTERNAL_PORT + n, CUDA_VISIBLE_DEVICES=n, a temp folder of
    its own; without COMFYUI_GPUS the one ComfyUI is `comfyui` and sees every GPU."""

    port: int  # its loopback port
    index: int = 0  # its place among the runtime's ComfyUIs (the gateway's client of the same index)
    gpu: int | None = None  # the GPU it runs on, as nvidia-smi numbers it; None: every GPU
    temp_directory: Path | None = None  # None: ComfyUI's default (COMFYUI_ROOT/temp)
    problem: str = ""  # why it cannot run on its GPU (not visible, CUDA fails): held `blocked`

    @classmethod
    def first(cls, settings: Settings) -> Instance:
        """The one ComfyUI `start` runs without COMFYUI_GPUS: COMFYUI_INTERNAL_PORT, every GPU."""
        return cls(port=settings.comfyui_internal_port)

    @classmethod
    def on_gpu(cls, gpu: int, port: int, index: int, problem: str = "") -> Instance:
        """GPU `gpu`'s ComfyUI, with its temp folder beside its database (ComfyUI empties its temp
        folder when it starts: two must never share one)."""
        return cls(port, index, gpu, database_path(port).parent / "temp", problem)

    @property
    def name(self) -> str:
        """Its service name (and log file name): `comfyui`, or `comfyui-n` for GPU n's."""
        return "comfyui" if self.gpu is None else f"comfyui-{self.gpu}"

    @property
    def log_name(self) -> str:
        return f"{self.name}.log"

    @property
    def database(self) -> Path:
        return database_path(self.port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """What its environment adds: which GPU CUDA shows it, numbered as nvidia-smi does."""
        if self.gpu is None:
            return {}
        return {"CUDA_VISIBLE_DEVICES": str(self.gpu), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
