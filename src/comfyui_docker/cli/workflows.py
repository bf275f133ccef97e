"""Workflow commands: convert a saved workflow to an API prompt, run one headless, list templates.

    comfyui-docker convert WORKFLOW.json [--object-info FILE]     prints the API prompt (JSON)
    comfyui-docker run WORKFLOW.json [--set N.I=V ...] [--install-missing] [--out DIR]
    comfyui-docker templates [QUERY] [--tag TAG] [--json]

WORKFLOW is a file (UI format as saved by ComfyUI's editor, or an API prompt) or
`template:<name>` for one of ComfyUI's official templates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import AppError, InvalidInput, NotFound
from ..settings import Settings
from ..workspace import Workspace


def _settings(args: argparse.Namespace) -> Settings:
    from .core import load_settings

    return load_settings(args)


def load_workflow(source: str, workspace: Workspace | None = None) -> dict[str, Any]:
    """A workflow from a file, `template:<name>` from the official templates, or a saved
    workflow by name (`portrait`, `people/portrait.json`) when no such file exists."""
    if source.startswith("template:") and not Path(source).exists():
        from ..workflows.templates import TemplateLibrary

        return TemplateLibrary().load(source.removeprefix("template:"))
    path = Path(source)
    if workspace is not None and not path.exists():
        from ..workflows.saved import SavedWorkflows

        path = SavedWorkflows(workspace.workflows, workspace.root).find(source) or path
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
    return data


def base_url(args: argparse.Namespace, settings: Settings) -> str:
    return str(args.url or f"http://127.0.0.1:{settings.comfyui_internal_port}").rstrip("/")


async def object_info_for(
    args: argparse.Namespace, settings: Settings, *, prefer_fresh: bool
) -> dict[str, Any]:
    """--object-info FILE; else the running ComfyUI (when `prefer_fresh`) or the copy on the volume."""
    from ..workflows.object_info import ObjectInfoStore, load_file

    if args.object_info:
        return load_file(Path(args.object_info))
    store = ObjectInfoStore(Workspace(settings.workspace_root).cache, base_url(args, settings))
    return await store.get(refresh=prefer_fresh)


def cmd_convert(args: argparse.Namespace) -> int:
    from ..workflows.convert import is_api_format, to_prompt

    settings = _settings(args)
    workflow = load_workflow(args.workflow, Workspace(settings.workspace_root))
    info: Mapping[str, Any] = {}
    if not is_api_format(workflow):
        info = asyncio.run(object_info_for(args, settings, prefer_fresh=False))
    prompt = to_prompt(workflow, info)
    text = json.dumps(prompt, indent=2, ensure_ascii=False)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.output} ({len(prompt)} nodes)", file=sys.stderr)
    else:
        print(text)
    return 0


def _model_check(
    workflow: Mapping[str, Any], prompt: Mapping[str, Any], info: Mapping[str, Any], models_root: Path
) -> list[dict[str, Any]]:
    """Models the prompt needs that neither the volume nor ComfyUI's own lists have."""
    from ..workflows.refs import declared_models, missing_models
    from ..workflows.widgets import combo_choices, input_specs

    urls: dict[str, str] = {}
    if "nodes" in workflow:
        urls = {d.name: d.url for d in declared_models(workflow) if d.url}
    out = []
    for item in missing_models(prompt, models_root):
        node = prompt.get(str(item.get("node_id"))) or {}
        definition = info.get(str(node.get("class_type"))) or {}
        known = {
            str(c)
            for name, spec in input_specs(definition)
            if name == item.get("input")
            for c in combo_choices(spec) or []
        }
        if item["name"] in known:
            continue  # ComfyUI lists it (another models folder, e.g. its own or a user yaml)
        item["url"] = item.get("url") or urls.get(item["name"])
        out.append(item)
    return out


async def _install(settings: Settings, label: str, missing: list[dict[str, Any]]) -> None:
    """Download the missing files through the downloads service (resume, verify, volume locks)."""
    without_url = [m for m in missing if not m.get("url")]
    if without_url:
        names = ", ".join(f"{m['folder']}/{m['name']}" for m in without_url)
        raise NotFound(
            f"no download URL is known for {names}",
            hint="install a preset that provides it, or copy the file into the volume's models folder",
        )
    from ..catalog.schema import FileSpec
    from ..downloads.service import PresetService
    from ..events import EventBus
    from ..workflows.templates import direct_url

    files = [FileSpec(path=f"{m['folder']}/{m['name']}", url=direct_url(str(m["url"]))) for m in missing]
    print(f"downloading {len(files)} model file(s) for {label}...", file=sys.stderr)
    service = PresetService(settings, Workspace(settings.workspace_root), EventBus())
    await service.start()
    try:
        task = await service.install_files(label, files)
        task = await service.wait(task.id)
    finally:
        await service.close()
    if task.state != "done":
        error = task.error or {}
        raise AppError(
            f"downloading the models failed: {error.get('message') or task.state}",
            hint=error.get("hint") or "run again to resume the download",
        )
    for spec in files:
        print(f"  installed {spec.path}", file=sys.stderr)


class LiveView:
    """Node and step progress on the terminal (rich when interactive, plain lines otherwise)."""

    def __init__(self, total_nodes: int, *, quiet: bool = False) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.quiet = quiet
        self.total = total_nodes
        self.done: set[str] = set()
        self.progress: Any = None
        self.step_task: Any = None
        self.node_task: Any = None

    def __enter__(self) -> LiveView:
        if not self.quiet and self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
            )
            self.progress.start()
            self.node_task = self.progress.add_task("nodes", total=self.total)
            self.step_task = self.progress.add_task("steps", total=1, visible=False)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, kind: str, data: Mapping[str, Any]) -> None:
        if self.quiet:
            return
        if kind == "queued":
            self._line(f"queued prompt {data['prompt_id']}")
        elif kind == "cached":
            cached = [str(n) for n in data.get("nodes") or []]
            if cached:
                self.done.update(cached)
                self._nodes(f"{len(cached)} node(s) cached")
        elif kind == "node":
            self.done.add(str(data["node"]))
            self._nodes(f"running {data['title']}")
        elif kind == "progress":
            value, maximum = data.get("value") or 0, data.get("max") or 1
            if self.progress is not None:
                self.progress.update(self.step_task, completed=value, total=maximum, visible=True)
            elif value in (1, maximum):
                self._line(f"  step {value}/{maximum}")
        elif kind == "ws_lost":
            self._line("progress connection lost; waiting for the result")

    def _nodes(self, text: str) -> None:
        if self.progress is not None:
            self.progress.update(self.node_task, completed=min(len(self.done), self.total), description=text)
        else:
            self._line(f"[{min(len(self.done), self.total)}/{self.total}] {text}")

    def _line(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False)


def cmd_run(args: argparse.Namespace) -> int:
    from ..workflows.convert import is_api_format, to_prompt
    from ..workflows.params import apply_sets

    settings = _settings(args)
    workflow = load_workflow(args.workflow, Workspace(settings.workspace_root))
    info = asyncio.run(object_info_for(args, settings, prefer_fresh=True))
    prompt = to_prompt(workflow, info)
    prompt, changes = apply_sets(prompt, info, args.set or [])
    for change in changes:
        print(f"set {change.title} (node {change.node_id}).{change.input} = {change.new!r}", file=sys.stderr)
    models_root = Workspace(settings.workspace_root).models
    missing = _model_check(workflow if not is_api_format(workflow) else {}, prompt, info, models_root)
    if missing and args.install_missing:
        asyncio.run(_install(settings, f"workflow {Path(args.workflow).name}", missing))
        missing = _model_check(workflow if not is_api_format(workflow) else {}, prompt, info, models_root)
    if missing:
        lines = [
            f"  {m['folder']}/{m['name']}" + (f"  <- {m['url']}" if m.get("url") else "") for m in missing
        ]
        print(
            "error: the workflow needs model files that are not installed:\n" + "\n".join(lines),
            file=sys.stderr,
        )
        print("       run again with --install-missing to download them", file=sys.stderr)
        return 1
    out_dir = Path(args.out) if args.out else None
    result = asyncio.run(_run(args, settings, prompt, out_dir))
    for path in result.files:
        print(path)
    print(
        f"done in {result.seconds:.1f} s: prompt {result.prompt_id}, {len(result.files)} file(s)",
        file=sys.stderr,
    )
    return 0


async def _run(
    args: argparse.Namespace, settings: Settings, prompt: dict[str, Any], out_dir: Path | None
) -> Any:
    import aiohttp

    from ..workflows.runner import ComfyRunner

    with LiveView(len(prompt), quiet=args.quiet) as view:
        async with aiohttp.ClientSession() as session:
            runner = ComfyRunner(base_url(args, settings), session=session, on_event=view)
            return await runner.run(prompt, out_dir, timeout_s=args.timeout or None)


def cmd_templates(args: argparse.Namespace) -> int:
    from ..workflows.templates import TemplateLibrary

    infos = TemplateLibrary().search(args.query or "", args.tag)
    if args.json:
        print(json.dumps([i.as_dict() for i in infos], indent=2, ensure_ascii=False))
        return 0
    for info in infos:
        tags = ", ".join(info.tags)
        print(f"{info.name:<60} {info.title}  [{tags}]")
    print(f"{len(infos)} template(s); run one with: comfyui-docker run template:<name>", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this area's sub-commands to the parser."""
    p = sub.add_parser("convert", help="print the API prompt of a workflow saved by ComfyUI's editor")
    p.add_argument("workflow", metavar="WORKFLOW", help="a workflow .json file, or template:<name>")
    p.add_argument("--object-info", metavar="FILE", help="saved GET /object_info (.json or .json.gz)")
    p.add_argument("--url", help="ComfyUI's address (default: http://127.0.0.1:$COMFYUI_INTERNAL_PORT)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the prompt to FILE instead of stdout")
    p.set_defaults(handler=cmd_convert)

    p = sub.add_parser("run", help="run a workflow on ComfyUI without a browser and save its outputs")
    p.add_argument(
        "workflow",
        metavar="WORKFLOW",
        help="a workflow .json file, a saved workflow's name, or template:<name>",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="NODE.INPUT=VALUE",
        help='set an input by node title or id: "KSampler.seed=42"',
    )
    p.add_argument("--install-missing", action="store_true", help="download the missing model files first")
    p.add_argument("--out", metavar="DIR", help="save the output files (images, videos, ...) into DIR")
    p.add_argument("--object-info", metavar="FILE", help="use saved node definitions instead of ComfyUI's")
    p.add_argument("--url", help="ComfyUI's address (default: http://127.0.0.1:$COMFYUI_INTERNAL_PORT)")
    p.add_argument(
        "--timeout", type=float, default=0, metavar="S", help="give up after S seconds (default: never)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("templates", help="list ComfyUI's official workflow templates")
    p.add_argument("query", nargs="?", help="words to look for in names, titles, descriptions, tags")
    p.add_argument("--tag", help="only templates with this tag")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_templates)
