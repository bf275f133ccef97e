"""Workflow commands: convert a saved workflow to an API prompt, run one headless, list templates.

Argument parsing and printing only: the steps (prepare, missing models, install, run) are the
workflow use case's (workflows/service.py), shared with the API and the pages.

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
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..settings import Settings
from ..workspace import Workspace

if TYPE_CHECKING:  # imported when a command runs, not when the parser is built
    import aiohttp

    from ..comfyui import ComfyUIGateway
    from ..downloads.service import PresetService
    from ..workflows.missing import MissingModel
    from ..workflows.service import WorkflowService


def _settings(args: argparse.Namespace) -> Settings:
    from .core import load_settings

    return load_settings(args)


def _gateway(session: aiohttp.ClientSession, settings: Settings, url: str | None) -> ComfyUIGateway:
    """`--url`'s ComfyUI; without it, the runtime's: with COMFYUI_GPUS one client per GPU's ComfyUI
    (the same plan as `start`), so `run` goes to the shortest queue too."""
    from ..comfyui import ComfyUIClient, ComfyUIGateway

    if url or not settings.comfyui_gpus.per_gpu:
        return ComfyUIGateway(ComfyUIClient(session, url or settings.comfyui_url))
    from .. import gpu
    from ..placement import plan

    report = gpu.judge(gpu.read_nvml(gpu.nvml_for(settings)), {"skipped": "not asked by run"}, "skipped")
    first, *more = (ComfyUIClient(session, i.url, name=i.name) for i in plan(settings, report).instances)
    return ComfyUIGateway(first, *more)


@asynccontextmanager
async def _use_case(
    args: argparse.Namespace, settings: Settings, *, catalog: bool = True
) -> AsyncIterator[Uses]:
    """The workflow use case for one command: a gateway to `--url` (default: ours), the copy of
    the node definitions on the volume (or `--object-info FILE`), and the preset catalog."""
    import aiohttp

    from ..downloads.service import PresetService
    from ..events import EventBus
    from ..workflows.object_info import ObjectInfoStore, load_file
    from ..workflows.saved import SavedWorkflows
    from ..workflows.service import WorkflowService

    workspace = Workspace(settings.workspace_root)
    fixed = load_file(Path(args.object_info)) if args.object_info else None
    async with aiohttp.ClientSession() as session:
        presets = PresetService(settings, workspace, EventBus(), session)
        if catalog:  # who provides a missing file; downloads start only with --install-missing
            presets.load_catalog()
        use = WorkflowService(
            definitions=ObjectInfoStore(workspace.cache),
            models_root=workspace.models,
            gateway=_gateway(session, settings, args.url),
            presets=presets,
            fixed_definitions=fixed,
            model_hosts=settings.model_hosts,
            saved=SavedWorkflows(workspace.workflows, workspace.root),
        )
        try:
            yield Uses(use, presets)
        finally:
            await presets.close()


@dataclass(frozen=True)
class Uses:
    workflows: WorkflowService
    presets: PresetService


def cmd_convert(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def convert() -> dict[str, Any]:
        async with _use_case(args, settings, catalog=False) as uses:
            use = uses.workflows
            return (await use.prepare(use.load(args.workflow))).prompt

    prompt = asyncio.run(convert())
    text = json.dumps(prompt, indent=2, ensure_ascii=False)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.output} ({len(prompt)} nodes)", file=sys.stderr)
    else:
        print(text)
    return 0


def _missing_lines(missing: list[MissingModel]) -> list[str]:
    lines = []
    for m in missing:
        line = f"  {m.path}"
        if m.ref.url:
            line += f"  <- {m.ref.url}"
        if m.providers:
            line += f"  (preset {', '.join(m.providers)})"
        lines.append(line)
    return lines


async def _install(uses: Uses, label: str, missing: list[MissingModel]) -> None:
    """Download the missing files through the downloads service (resume, verify, volume locks)."""
    if all(m.install is not None for m in missing):
        print(f"downloading {len(missing)} model file(s) for {label}...", file=sys.stderr)
        await uses.presets.start()
    await uses.workflows.install_and_wait(missing, label=label)
    for m in missing:
        print(f"  installed {m.path}", file=sys.stderr)


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
    from ..comfyui import PromptRejected

    settings = _settings(args)
    try:
        return asyncio.run(_run(args, settings))
    except PromptRejected as exc:
        print("error: ComfyUI rejected the prompt:", file=sys.stderr)
        for line in exc.problems:
            print(f"  {line}", file=sys.stderr)
        if exc.hint:
            print(f"       {exc.hint}", file=sys.stderr)
        return 1


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    async with _use_case(args, settings) as uses:
        use = uses.workflows
        workflow = use.load(args.workflow)
        prepared = await use.prepare(workflow, sets=args.set or [], refresh=True)
        for change in prepared.changes:
            print(
                f"set {change.title} (node {change.node_id}).{change.input} = {change.new!r}", file=sys.stderr
            )
        missing = await use.missing(prepared)
        if missing and args.install_missing:
            await _install(uses, f"workflow {workflow.label}", missing)
            missing = await use.missing(prepared)
        if missing:
            print(
                "error: the workflow needs model files that are not installed:\n"
                + "\n".join(_missing_lines(missing)),
                file=sys.stderr,
            )
            print("       run again with --install-missing to download them", file=sys.stderr)
            return 1
        out_dir = Path(args.out) if args.out else None
        with LiveView(len(prepared.prompt), quiet=args.quiet) as view:
            result = await use.run(prepared, out_dir=out_dir, timeout_s=args.timeout or None, on_event=view)
    for path in result.files:
        print(path)
    print(
        f"done in {result.seconds:.1f} s: prompt {result.prompt_id}, {len(result.files)} file(s)",
        file=sys.stderr,
    )
    return 0


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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this area's sub-commands to the parser."""
    p = sub.add_parser("convert", help="print the API prompt of a workflow saved by ComfyUI's editor")
    p.add_argument(
        "workflow",
        metavar="WORKFLOW",
        help="a workflow .json file, a saved workflow's name, or template:<name>",
    )
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
