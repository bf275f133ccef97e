"""Running a workflow: the one use case behind `comfyui-docker run`, the API and the pages.

    prepare  load a workflow (UI or API format, a file, a request body or `template:<name>`),
             convert it with ComfyUI's node definitions, apply `--set` / form overrides
    missing  the model files it needs that are not on the volume (nor in ComfyUI's own lists,
             when its definitions were just fetched), each with the presets and URL that provide it
             (a URL with its host, and why it is refused when that host is not an allowed model
             host: `model_hosts`, MODEL_HOSTS + Settings, see downloads/guard.py): missing.py
    install_missing   start the downloads: the providing preset, else the workflow's URL when its
             host is allowed (`install_and_wait`: and wait until they are verified on the volume)
    submit   queue it through the gateway (or `run`: and follow it to its saved outputs)

ComfyUI's rejections come back as PromptRejected whose `missing` models carry their presets, so
every caller can offer the install. Callers only parse arguments and show results.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..catalog.schema import FileSpec
from ..comfyui import ComfyUIGateway, PromptRejected, RunResult, Submitted
from ..comfyui.runner import EventSink
from ..downloads.hosts import DEFAULT_MODEL_HOSTS
from ..errors import AppError, InvalidInput, NotFound, ServiceUnavailable, UrlRefused
from ..model_inputs import ModelRef
from .convert import is_api_format, to_prompt
from .missing import Installation, MissingModel, ModelSources, listed_by_comfyui
from .object_info import ObjectInfoStore
from .params import Change, apply_sets, apply_values
from .refs import is_present, model_refs, prompt_models

if TYPE_CHECKING:  # the template package is read only when a template is asked for
    from .saved import SavedWorkflows
    from .templates import TemplateLibrary

TEMPLATE_PREFIX = "template:"


@dataclass(frozen=True)
class Workflow:
    data: dict[str, Any]
    label: str  # for messages: a file name, `template:<name>`, "the request"

    @property
    def is_ui(self) -> bool:
        return not is_api_format(self.data)


@dataclass(frozen=True)
class Definitions:
    nodes: dict[str, Any]
    live: bool  # fetched from the running ComfyUI for this request (its model lists are current)


@dataclass(frozen=True)
class Prepared:
    workflow: Workflow
    prompt: dict[str, Any]
    definitions: Definitions | None
    changes: tuple[Change, ...] = ()

    def extra_data(self) -> dict[str, Any] | None:
        """The editor's workflow goes into the PNGs SaveImage writes (reopened as it was)."""
        return {"extra_pnginfo": {"workflow": self.workflow.data}} if self.workflow.is_ui else None


def check_workflow(data: object, source: str = "the workflow") -> dict[str, Any]:
    """`data` when it is a workflow in the UI format (`nodes`) or an API prompt; else InvalidInput."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{source} is not a JSON object", hint="a workflow is an object with 'nodes'")
    if "nodes" in data:
        if not isinstance(data["nodes"], list):
            raise InvalidInput(f"{source}: 'nodes' must be a list")
        return data
    graph = data.get("prompt", data)
    if (
        isinstance(graph, dict)
        and graph
        and all(isinstance(v, dict) and "class_type" in v for v in graph.values())
    ):
        return data
    raise InvalidInput(
        f"{source} is not a ComfyUI workflow",
        hint="expected the UI format (with 'nodes') or an API prompt ({id: {class_type, inputs}})",
    )


class WorkflowService:
    def __init__(
        self,
        *,
        definitions: ObjectInfoStore,
        models_root: Path,
        gateway: ComfyUIGateway | None = None,
        presets: ModelSources | None = None,
        templates: TemplateLibrary | None = None,
        fixed_definitions: dict[str, Any] | None = None,
        model_hosts: Sequence[str] = DEFAULT_MODEL_HOSTS,
        saved: SavedWorkflows | None = None,
    ) -> None:
        """`fixed_definitions` (a saved /object_info) replace ComfyUI's own when given;
        `model_hosts`: where a workflow's own URLs may download from (MODEL_HOSTS + Settings);
        `saved`: the volume's saved workflows, found by name by `load`."""
        from ..downloads.guard import UrlGuard

        self.store = definitions
        self.models_root = models_root
        self.url_guard = UrlGuard(tuple(model_hosts))
        self.gateway = gateway
        self.presets = presets
        self._templates = templates
        self._fixed = fixed_definitions
        self.saved = saved

    # ---- loading -----------------------------------------------------------------------------
    def template(self, name: str) -> Workflow:
        """One of ComfyUI's official templates, by name."""
        if self._templates is None:
            from .templates import default_library

            self._templates = default_library()
        return Workflow(self._templates.load(name), f"{TEMPLATE_PREFIX}{name}")

    def load_file(self, path: Path) -> Workflow:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise NotFound(
                f"{path} does not exist", hint="give a file, template:<name> or the name of a saved workflow"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read {path}: {exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
        if not isinstance(data, dict):
            raise InvalidInput(f"{path} is not a ComfyUI workflow (a JSON object is expected)")
        return Workflow(data, path.name)

    def load(self, source: str) -> Workflow:
        """A file, `template:<name>` (a file of that name wins), or a saved workflow by name
        (`portrait`, `people/portrait.json`) when no such file exists. For the CLI: reads any path."""
        path = Path(source)
        if source.startswith(TEMPLATE_PREFIX) and not path.exists():
            return self.template(source.removeprefix(TEMPLATE_PREFIX))
        if self.saved is not None and not path.exists():
            path = self.saved.find(source) or path
        return self.load_file(path)

    def accept(self, data: object, label: str = "the workflow") -> Workflow:
        """A workflow sent in a request (checked: UI format or API prompt)."""
        return Workflow(check_workflow(data, label), label)

    # ---- preparing ---------------------------------------------------------------------------
    async def definitions(self, *, refresh: bool = False) -> Definitions:
        """ComfyUI's node definitions: fetched when asked (or when none is kept), else the copy."""
        if self._fixed is not None:
            return Definitions(self._fixed, live=False)
        fetch = self.gateway.node_definitions if self.gateway is not None else None
        before = self.store.fetches
        nodes = await self.store.get(fetch, refresh=refresh)
        return Definitions(nodes, live=self.store.fetches > before)

    async def prepare(
        self,
        workflow: Workflow,
        *,
        sets: Iterable[str] = (),
        values: Mapping[str, object] | None = None,
        refresh: bool = False,
    ) -> Prepared:
        """The API prompt: converted (UI format), then `NODE.INPUT=VALUE` / `{NODE.INPUT: value}`
        applied, type-checked against the definitions. `refresh` asks ComfyUI for current ones."""
        sets = list(sets)
        definitions: Definitions | None = None
        if workflow.is_ui or sets or values:
            definitions = await self.definitions(refresh=refresh)
        elif refresh:
            try:  # an API prompt runs without them; with them, `missing` sees ComfyUI's lists
                definitions = await self.definitions(refresh=True)
            except ServiceUnavailable:
                definitions = None
        nodes = definitions.nodes if definitions else {}
        prompt = await asyncio.to_thread(to_prompt, workflow.data, nodes)
        changes: list[Change] = []
        if sets:
            prompt, done = apply_sets(prompt, nodes, sets)
            changes += done
        if values:
            prompt, done = apply_values(prompt, nodes, values)
            changes += done
        return Prepared(workflow, prompt, definitions, tuple(changes))

    # ---- models ------------------------------------------------------------------------------
    async def missing(self, target: Workflow | Prepared) -> list[MissingModel]:
        """Model files the workflow needs that are not on the volume, with who provides them."""
        if isinstance(target, Prepared):
            prompt = target.prompt
            refs = await asyncio.to_thread(prompt_models, prompt, target.workflow.data)
            live = target.definitions.nodes if target.definitions and target.definitions.live else None
        else:
            prompt, live = {}, None
            refs = await asyncio.to_thread(model_refs, target.data, self._saved_definitions())
        out = []
        for ref in refs:
            if is_present(self.models_root, ref.folder, ref.name):
                continue
            if live is not None and listed_by_comfyui(ref, prompt, live):
                continue
            providers = self._providers(ref)
            refusal = None if providers or not ref.url else self.url_guard.refusal(ref.url, declared=True)
            out.append(MissingModel(ref, providers, refusal))
        return out

    def _saved_definitions(self) -> dict[str, Any] | None:
        if self._fixed is not None:
            return self._fixed
        try:
            return self.store.load()
        except AppError:  # a broken copy: read the widgets without it
            return None

    def _providers(self, ref: ModelRef) -> tuple[str, ...]:
        return tuple(self.presets.providers(ref.folder, ref.name)) if self.presets is not None else ()

    async def install_missing(self, missing: Sequence[MissingModel], *, label: str) -> Installation:
        """Start the downloads: each providing preset once, the workflow's URLs as one task."""
        if self.presets is None:
            raise ServiceUnavailable(
                "the preset service is not running",
                hint="see workspace/logs/dashboard.log",
                state="not started",
            )
        from .templates import direct_url

        done = Installation()
        started: set[str] = set()
        by_url: list[FileSpec] = []
        for item in missing:
            how = item.install
            if how is None:
                done.unresolved.append(item)
            elif item.refused:
                done.refused.append(item)
            elif how["kind"] == "preset":
                if how["preset_id"] not in started:
                    started.add(how["preset_id"])
                    done.tasks.append(await self.presets.install(how["preset_id"]))
            else:
                by_url.append(FileSpec(path=item.path, url=direct_url(how["url"])))
        if by_url:
            done.tasks.append(await self.presets.install_files(label, by_url))
        return done

    async def install_and_wait(self, missing: Sequence[MissingModel], *, label: str) -> None:
        """Install every missing file and wait until each is verified on the volume (CLI and
        serverless runs); fails first when one has no known source."""
        unresolved = [m.path for m in missing if m.install is None]
        if unresolved:
            raise NotFound(
                f"no download URL is known for {', '.join(unresolved)}",
                hint="install a preset that provides it, or copy the file into the volume's models folder",
            )
        refused = [m for m in missing if m.refused]
        if refused:
            raise UrlRefused(
                f"refused to download {', '.join(m.path for m in refused)}: {refused[0].refusal}",
                hint="a workflow may only name files on the allowed model hosts (MODEL_HOSTS, or "
                "Settings > Model hosts); internal addresses are never fetched",
            )
        started = await self.install_missing(missing, label=label)
        assert self.presets is not None  # install_missing refused otherwise
        for task in started.tasks:
            finished = await self.presets.wait(task.id)
            if finished.state != "done":
                error = finished.error or {}
                raise AppError(
                    f"downloading the models failed: {error.get('message') or finished.state}",
                    hint=error.get("hint") or "run again to resume the download",
                )

    # ---- queueing ----------------------------------------------------------------------------
    def _gateway(self) -> ComfyUIGateway:
        if self.gateway is None:
            raise ServiceUnavailable("ComfyUI is not connected to this process", state="unreachable")
        return self.gateway

    def _name_sources(self, exc: PromptRejected) -> None:
        exc.details["missing"] = [MissingModel(ref, self._providers(ref)).to_dict() for ref in exc.missing]

    async def submit(self, prepared: Prepared, *, client_id: str | None = None) -> Submitted:
        """Queue it; its frames go to `client_id` (default: the gateway's relay, onto the bus)."""
        try:
            return await self._gateway().submit(
                prepared.prompt, client_id=client_id, extra_data=prepared.extra_data()
            )
        except PromptRejected as exc:
            self._name_sources(exc)
            raise

    async def run(
        self,
        prepared: Prepared,
        *,
        out_dir: Path | None = None,
        timeout_s: float | None = None,
        on_event: EventSink | None = None,
        extra_data: Mapping[str, object] | None = None,
    ) -> RunResult:
        """Queue it and follow it to its end; its output files are saved into `out_dir`.
        `extra_data` goes to ComfyUI beside the editor's workflow (e.g. `api_key_comfy_org`)."""
        extra = {**(prepared.extra_data() or {}), **(extra_data or {})}
        try:
            return await self._gateway().run(
                prepared.prompt,
                out_dir=out_dir,
                timeout_s=timeout_s,
                on_event=on_event,
                extra_data=extra or None,
            )
        except PromptRejected as exc:
            self._name_sources(exc)
            raise
