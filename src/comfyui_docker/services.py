"""The long-lived services of one runtime process, created once and handed to the web app.

`comfyui-docker start` builds one `Services` and shares it between the dashboard, the
supervisor and the downloads (one process, one event loop). Tests and `create_app(settings)`
without services build their own. Optional members stay None until their subsystem is started.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .events import EventBus
from .settings import Settings
from .workspace import Workspace

if TYPE_CHECKING:  # aiohttp and the workflow tools are imported after ComfyUI's spawn
    from .comfyui import ComfyUIGateway
    from .workflows.object_info import ObjectInfoStore


@dataclass
class PhaseTiming:
    name: str
    seconds: float
    ok: bool = True
    detail: str = ""


@dataclass
class Services:
    settings: Settings
    workspace: Workspace
    bus: EventBus = field(default_factory=EventBus)
    started_at: float = field(default_factory=time.time)
    timings: list[PhaseTiming] = field(default_factory=list)
    # Filled in by the subsystems as they start (typed in their own modules):
    http: Any = None  # aiohttp.ClientSession shared by downloads and the ComfyUI client
    presets: Any = None  # downloads.service.PresetService
    supervisor: Any = None  # supervisor.manager.Supervisor
    comfyui: ComfyUIGateway | None = None  # the one way to ComfyUI (comfyui/gateway.py)
    object_info: ObjectInfoStore | None = None  # ComfyUI's node definitions, kept on the volume
    nodes: Any = None  # nodes.service.NodeService (made by the custom-nodes phase or the API)
    node_tasks: Any = None  # nodes.tasks.NodeTasks

    @classmethod
    def create(cls, settings: Settings) -> Services:
        """Services for `settings`, with what the user saved in the dashboard applied over them."""
        from .user_settings import effective

        workspace = Workspace(settings.workspace_root)
        return cls(settings=effective(settings, workspace.user_settings), workspace=workspace)

    def update_settings(self, settings: Settings) -> None:
        """Adopt new effective settings (saved in the dashboard): the next download uses them."""
        self.settings = settings
        if self.presets is not None and hasattr(self.presets, "settings"):
            self.presets.settings = settings
