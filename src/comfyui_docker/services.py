"""The long-lived services of one runtime process, created once and handed to the web app.

`comfyui-docker start` builds one `Services` and shares it between the dashboard, the
supervisor and the downloads (one process, one event loop). Tests and `create_app(settings)`
without services build their own. Optional members stay None until their subsystem is started.

The preset service and the supervisor are typed by what their users need of them (`Presets`,
`Supervision`): `downloads.service.PresetService` and `supervisor.Supervisor` are the real ones,
`tests/web/fakes.py` has stand-ins, and mypy checks both against these Protocols.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .events import EventBus
from .settings import Settings
from .workspace import Workspace

if TYPE_CHECKING:  # aiohttp and the workflow tools are imported after ComfyUI's spawn
    import aiohttp

    from .catalog.schema import FileSpec
    from .comfyui import ComfyUIGateway
    from .gpu import GpuReport
    from .instance import Instance
    from .nodes.service import NodeService
    from .nodes.tasks import NodeTasks
    from .supervisor.manager import Status
    from .workflows.object_info import ObjectInfoStore


@dataclass
class PhaseTiming:
    name: str
    seconds: float
    ok: bool = True
    detail: str = ""


class InstallTask(Protocol):
    """One install task as its callers see it (downloads.tasks.Task)."""

    @property
    def id(self) -> str: ...

    @property
    def preset_id(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def error(self) -> dict[str, Any] | None: ...

    def to_dict(self) -> dict[str, Any]: ...


class CatalogView(Protocol):
    """The loaded catalog: its presets by id and the entries it skipped (catalog.Catalog)."""

    @property
    def presets(self) -> Mapping[str, object]: ...

    @property
    def problems(self) -> Sequence[object]: ...


class Presets(Protocol):
    """What the dashboard, the health report and the workflow use case need of the preset service."""

    @property
    def catalog(self) -> CatalogView: ...

    def apply_settings(self, settings: Settings) -> None: ...

    def list_presets(self, category: str | None = None, type: str | None = None) -> list[dict[str, Any]]: ...

    def describe(self, preset_id: str) -> dict[str, Any]: ...

    def installed_state(self, preset_id: str) -> str: ...

    def owners_of(self, rel_path: str) -> list[str]: ...

    def providers(self, folder: str, filename: str) -> list[str]: ...

    def task(self, task_id: str) -> InstallTask: ...

    def tasks(self) -> Sequence[InstallTask]: ...

    async def install(self, preset_id: str, variant: str | None = None) -> InstallTask: ...

    async def install_files(self, label: str, files: list[FileSpec]) -> InstallTask: ...

    async def cancel(self, task_id: str) -> InstallTask: ...

    async def wait(self, task_id: str) -> InstallTask: ...

    async def uninstall(self, preset_id: str) -> list[str]: ...

    async def close(self) -> None:
        """Stop its downloads (they stay resumable); its owner calls it at shutdown."""
        ...


class Supervision(Protocol):
    """What the dashboard and the health report need of the supervisor (supervisor.Supervisor)."""

    def status(self, name: str) -> Status:
        """The state of the service `name`; KeyError when it is not supervised."""
        ...

    def log_tail(self, name: str, lines: int) -> list[str]: ...

    async def restart(self, name: str) -> None: ...


@dataclass
class Services:
    settings: Settings
    workspace: Workspace
    bus: EventBus = field(default_factory=EventBus)
    started_at: float = field(default_factory=time.time)
    timings: list[PhaseTiming] = field(default_factory=list)
    # Filled in by the subsystems as they start:
    http: aiohttp.ClientSession | None = None  # shared by downloads and the ComfyUI gateway
    presets: Presets | None = None  # downloads.service.PresetService
    supervisor: Supervision | None = None  # supervisor.Supervisor (only under `start`)
    comfyui: ComfyUIGateway | None = None  # the one way to ComfyUI (comfyui/gateway.py)
    object_info: ObjectInfoStore | None = None  # ComfyUI's node definitions, kept on the volume
    gpu: GpuReport | None = None  # the GPU preflight's last report (start-up fills it)
    nodes: NodeService | None = None  # custom nodes (made by the custom-nodes phase or the API)
    node_tasks: NodeTasks | None = None  # their installs, run in the background
    # The ComfyUIs `start` runs (placement.py, COMFYUI_GPUS), in order; empty: the one at
    # COMFYUI_INTERNAL_PORT (a laptop, tests, `create_app(settings)`).
    instances: list[Instance] = field(default_factory=list)

    @classmethod
    def create(cls, settings: Settings) -> Services:
        """Services for `settings`, with what the user saved in the dashboard applied over them."""
        from .user_settings import effective

        workspace = Workspace(settings.workspace_root)
        return cls(settings=effective(settings, workspace.user_settings), workspace=workspace)

    def http_client(self) -> aiohttp.ClientSession:
        """The shared aiohttp session, made on first use (`start` imports aiohttp after ComfyUI's
        spawn); its owner closes it."""
        if self.http is None:
            import aiohttp

            self.http = aiohttp.ClientSession()
        return self.http

    def gateway(self) -> ComfyUIGateway:
        """The gateway to ComfyUI on the shared session, made on first use: one client per
        instance, a new prompt to the running one with the shortest queue."""
        if self.comfyui is None:
            from .comfyui import ComfyUIClient, ComfyUIGateway

            http = self.http_client()
            if len(self.instances) < 2:
                url = self.instances[0].url if self.instances else self.settings.comfyui_url
                name = self.instances[0].name if self.instances else "comfyui"
                self.comfyui = ComfyUIGateway(ComfyUIClient(http, url, name=name))
            else:
                first, *more = (ComfyUIClient(http, i.url, name=i.name) for i in self.instances)
                self.comfyui = ComfyUIGateway(first, *more, is_up=self.instance_runs)
        return self.comfyui

    def instance_names(self) -> list[str]:
        """The supervised services of the ComfyUIs, in order (`comfyui`, or `comfyui-n` each)."""
        return [i.name for i in self.instances] or ["comfyui"]

    def instance_runs(self, name: str) -> bool:
        """Whether the ComfyUI `name` runs now, as the supervisor says (True without one)."""
        if self.supervisor is None:
            return True
        try:
            return self.supervisor.status(name).state.value == "running"
        except KeyError:
            return False

    def update_settings(self, settings: Settings) -> None:
        """Adopt new effective settings (saved in the dashboard): the next download uses them."""
        self.settings = settings
        if self.presets is not None:
            self.presets.apply_settings(settings)
