"""`comfyui-docker presets ...`: list, show, install (live progress), remove, status.

Exit codes:
    0    success
    1    a download failed (network, checksum, gated file, dead URL)
    2    bad usage: unknown preset id or variant
    3    not enough free space on the volume
    130  interrupted: the .part files are kept; the same command resumes them
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from ..catalog import human_size
from ..errors import AppError, DiskFull, InvalidInput, NotFound
from ..events import EventBus
from ..workspace import Workspace

# rich costs ~0.1 s to import: only the commands that print with it import it (not `start`)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DISK, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _service(args: argparse.Namespace) -> Any:
    from ..downloads.service import PresetService
    from .core import load_settings

    settings = load_settings(args)
    ws = Workspace(settings.workspace_root)
    ws.ensure()
    return PresetService(settings, ws, EventBus())


def _run(args: argparse.Namespace, body: Callable[[Any], Awaitable[int]]) -> int:
    async def main() -> int:
        svc = _service(args)
        await svc.start()
        try:
            return await body(svc)
        finally:
            await svc.close()

    try:
        return asyncio.run(main())
    except (NotFound, InvalidInput) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DiskFull as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DISK
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted: partial downloads are kept; run the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED


def _state_mark(state: str) -> str:
    return {"installed": "[green]installed[/]", "partial": "[yellow]partial[/]"}.get(state, "-")


# ---- list / show / status -------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    async def body(svc: Any) -> int:
        items = svc.list_presets(category=args.category, type=args.type)
        if args.search:
            words = args.search.lower().split()
            items = [
                p
                for p in items
                if all(
                    w in " ".join([p["id"], p["name"], p["description"], *p["tags"]]).lower() for w in words
                )
            ]
        if args.json:
            print(json.dumps(items, indent=2))
            return EXIT_OK
        table = Table(title=f"{len(items)} preset(s)")
        for col in ("id", "type", "name", "size", "variants", "state"):
            table.add_column(col)
        for p in items:
            variants = ", ".join(v["name"] for v in p["variants"]) or "-"
            table.add_row(
                p["id"], p["type"], p["name"], human_size(p["size"]), variants, _state_mark(p["installed"])
            )
        console = Console()
        console.print(table)
        for problem in svc.catalog.problems:
            console.print(f"[yellow]catalog {problem.level}:[/] {problem}", highlight=False)
        return EXIT_OK

    return _run(args, body)


def cmd_show(args: argparse.Namespace) -> int:
    from rich.console import Console

    async def body(svc: Any) -> int:
        preset = svc.get(args.id)
        info = next(p for p in svc.list_presets() if p["id"] == preset.id)
        if args.json:
            print(json.dumps(info, indent=2))
            return EXIT_OK
        console = Console(highlight=False)
        console.print(f"[bold]{info['id']}[/] - {info['name']} ({info['type']}, {info['category']})")
        console.print(info["description"])
        req = info["requirements"]
        console.print(f"needs: {req['vram_gb'] or '?'} GB VRAM, {req['disk_gb'] or '?'} GB disk")
        console.print(f"state: {_state_mark(info['installed'])}  defined at {info['source']}")
        if info["gated"]:
            console.print(
                f"gated: set {', '.join(info['token_env'])}; accept the licence at {info['licence_url']}"
            )
        groups = [("shared", info["files"])] if not info["variants"] else []
        if info["variants"]:
            shared = {f["path"] for f in info["files"]}
            for v in info["variants"]:
                shared &= {f["path"] for f in v["files"]}
            groups.append(("shared", [f for f in info["files"] if f["path"] in shared]))
            for v in info["variants"]:
                mark = " (default)" if v["name"] == info["default_variant"] else ""
                label = f"variant {v['name']}{mark}: {v['description']}"
                groups.append((label, [f for f in v["files"] if f["path"] not in shared]))
        for label, files in groups:
            console.print(f"\n[bold]{label}[/]")
            for f in files:
                opt = " (optional)" if f["optional"] else ""
                console.print(f"  {f['path']}  {human_size(f['size'])}{opt}\n    {f['url']}")
        return EXIT_OK

    return _run(args, body)


def cmd_status(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    async def body(svc: Any) -> int:
        installed = [p for p in svc.list_presets() if p["installed"] != "not_installed"]
        tasks = [t.to_dict() for t in svc.tasks()][: args.limit]
        if args.json:
            print(json.dumps({"presets": installed, "tasks": tasks}, indent=2))
            return EXIT_OK
        console = Console(highlight=False)
        console.print(f"workspace: {svc.ws.root}")
        if not installed:
            console.print("no preset installed")
        for p in installed:
            variant = f" [{p['installed_variant']}]" if p["installed_variant"] else ""
            console.print(f"{_state_mark(p['installed'])}  {p['id']}{variant}  {human_size(p['size'])}")
        if tasks:
            table = Table(title="recent tasks")
            for col in ("task", "preset", "state", "bytes", "error"):
                table.add_column(col)
            for t in tasks:
                err = (t["error"] or {}).get("message", "")
                done = f"{human_size(t['bytes_done'])} / {human_size(t['bytes_total'])}"
                table.add_row(t["id"], t["preset_id"], t["state"], done, err)
            console.print(table)
        return EXIT_OK

    return _run(args, body)


# ---- install / remove -----------------------------------------------------------------
def cmd_install(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    ids = [i.strip() for i in args.ids.split(",") if i.strip()]
    if not ids:
        print("error: name at least one preset id", file=sys.stderr)
        return EXIT_USAGE

    async def body(svc: Any) -> int:
        tasks = [await svc.install(pid, args.variant, include_optional=args.optional) for pid in ids]
        console = Console(stderr=True, highlight=False)
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[state]}"),
        )
        with Progress(*columns, console=console, transient=False) as bars:
            rows = {
                t.id: bars.add_task(
                    f"{t.preset_id}{f' [{t.variant}]' if t.variant else ''}", total=None, state=t.state
                )
                for t in tasks
            }
            try:
                while not all(t.finished for t in tasks):
                    for t in tasks:
                        bars.update(
                            rows[t.id], completed=t.bytes_done, total=t.bytes_total or None, state=t.state
                        )
                    await asyncio.sleep(0.2)
            except asyncio.CancelledError:
                for t in tasks:
                    await svc.cancel(t.id)
                raise
            for t in tasks:
                bars.update(rows[t.id], completed=t.bytes_done, total=t.bytes_total or None, state=t.state)
        codes = {EXIT_OK}
        for t in tasks:
            if t.state == "done":
                console.print(f"[green]done[/] {t.preset_id}")
                continue
            err = t.error or {}
            console.print(f"[red]{t.state}[/] {t.preset_id}: {err.get('message', '')}")
            if err.get("hint"):
                console.print(f"  -> {err['hint']}")
            codes.add(EXIT_DISK if err.get("code") == "disk_full" else EXIT_FAILED)
        return EXIT_DISK if EXIT_DISK in codes else max(codes)

    return _run(args, body)


def cmd_remove(args: argparse.Namespace) -> int:
    async def body(svc: Any) -> int:
        removed = await svc.uninstall(args.id)
        for path in removed:
            print(f"deleted models/{path}")
        if not removed:
            print("nothing to delete (files are missing or used by other installed presets)")
        return EXIT_OK

    return _run(args, body)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `presets list|show|install|remove|status`."""
    parser = sub.add_parser("presets", help="list, install and remove model presets")
    psub = parser.add_subparsers(dest="presets_command", metavar="ACTION", required=True)

    p = psub.add_parser("list", help="the catalog, with what is installed")
    p.add_argument("--type", choices=["video", "image", "audio", "other"])
    p.add_argument("--category")
    p.add_argument("--search", help="words that must appear in id, name, description or tags")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_list)

    p = psub.add_parser("show", help="one preset: files, variants, requirements")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_show)

    p = psub.add_parser("install", help="download presets (resumes partial downloads)")
    p.add_argument("ids", metavar="ID[,ID...]")
    p.add_argument("--variant", help="e.g. fp16, fp8, gguf_q4 (default: the preset's default)")
    p.add_argument("--optional", action="store_true", help="also install the optional files")
    p.set_defaults(handler=cmd_install)

    p = psub.add_parser("remove", help="delete a preset's files (files other installed presets use stay)")
    p.add_argument("id")
    p.set_defaults(handler=cmd_remove)

    p = psub.add_parser("status", help="installed presets and recent install tasks")
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_status)
