"""`comfyui-docker nodes list|install SOURCE|remove NAME|update NAME|check [--json]`.

The work happens in this process (like `presets install`), under the volume's node lock, so it
is safe beside a running runtime; ComfyUI loads the change at its next start
(`comfyui-docker restart`).

Exit codes: 0 done, 1 the install or update failed (fetch, pip, install.py) or `check` found a
problem, 2 bad usage (unknown node, bad name or source), 3 a requirement conflicts with the
image's packages.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from ..errors import AppError, Conflict, InvalidInput, NotFound, RequirementConflict

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONFLICT = 0, 1, 2, 3


def _service(args: argparse.Namespace) -> Any:
    from ..nodes.service import NodeService
    from ..workspace import Workspace
    from .core import load_settings

    settings = load_settings(args)
    workspace = Workspace(settings.workspace_root)
    workspace.init()
    return NodeService(settings, workspace)


def _run(args: argparse.Namespace, body: Callable[[Any], Coroutine[Any, Any, int]]) -> int:
    try:
        return asyncio.run(body(_service(args)))
    except RequirementConflict as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFLICT
    except (NotFound, InvalidInput, Conflict) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _echo(quiet: bool) -> Callable[[str], None]:
    def out(line: str) -> None:
        if not quiet:
            print(line, file=sys.stderr, flush=True)

    return out


def _short(commit: str | None) -> str:
    return commit[:10] if commit else "-"


def cmd_list(args: argparse.Namespace) -> int:
    async def body(svc: Any) -> int:
        from ..nodes.report import status as report

        status = await report(svc)
        if args.json:
            print(json.dumps(status, indent=2))
            return EXIT_OK
        layer = status["layer"]
        print(f"volume nodes: {status['folders']['volume']}")
        problem = f" ({status['problem']})" if status["problem"] else ""
        print(f"package layer: {layer['path'] if layer else '-'}{problem}")
        if layer:
            print(f"site-packages: {layer['site']}")
        print(f"{'where':<7} {'name':<40} {'commit':<11} {'import':<11} packages")
        for item in [*status["image"], *status["volume"]]:
            imp = item["import"]["state"]
            pk = item.get("packages", {}).get("state", "-")
            print(f"{item['where']:<7} {item['name']:<40} {_short(item['commit']):<11} {imp:<11} {pk}")
        return EXIT_OK

    return _run(args, body)


def cmd_install(args: argparse.Namespace) -> int:
    async def body(svc: Any) -> int:
        result = await svc.install(
            args.source, name=args.name, allow_script=args.allow_install_script, on_line=_echo(args.quiet)
        )
        print(json.dumps(result) if args.json else f"installed {result['name']} -> {result['path']}")
        return EXIT_OK

    return _run(args, body)


def cmd_update(args: argparse.Namespace) -> int:
    async def body(svc: Any) -> int:
        result = await svc.update(
            args.name, ref=args.ref, allow_script=args.allow_install_script, on_line=_echo(args.quiet)
        )
        if args.json:
            print(json.dumps(result))
        else:
            print(f"{result['name']}: {_short(result.get('old'))} -> {_short(result.get('commit'))}")
        return EXIT_OK

    return _run(args, body)


def cmd_remove(args: argparse.Namespace) -> int:
    async def body(svc: Any) -> int:
        result = await svc.remove(args.name, on_line=_echo(args.quiet))
        print(json.dumps(result) if args.json else f"removed {result['name']}")
        return EXIT_OK

    return _run(args, body)


def cmd_check(args: argparse.Namespace) -> int:
    async def body(svc: Any) -> int:
        from ..nodes.report import check

        items = await check(svc)
        bad = [i for i in items if i["import"]["state"] == "failed" or i["missing"]]
        if args.json:
            print(json.dumps({"nodes": items, "problems": len(bad)}, indent=2))
            return EXIT_FAILED if bad else EXIT_OK
        for item in items:
            imp = item["import"]
            mark = "FAIL" if item in bad else "ok  "
            line = f"[{mark}] {item['where']:<6} {item['name']}: import {imp['state']}"
            if imp["error"]:
                line += f" ({imp['error']})"
            print(line)
            for req in item["missing"]:
                print(f"       missing requirement: {req}")
            for req in item["unchecked"]:
                print(f"       not checked (pip decides): {req}")
        if bad:
            print(
                f"{len(bad)} node(s) with problems: `comfyui-docker nodes update NAME` retries one, "
                "logs/comfyui.log has the tracebacks",
                file=sys.stderr,
            )
        return EXIT_FAILED if bad else EXIT_OK

    return _run(args, body)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("nodes", help="custom nodes on the volume: list, install, update, remove, check")
    nodes = p.add_subparsers(dest="nodes_command", metavar="ACTION", required=True)

    def common(q: argparse.ArgumentParser, *, scripts: bool = False) -> None:
        q.add_argument("--json", action="store_true", help="machine-readable output")
        q.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
        if scripts:
            q.add_argument(
                "--allow-install-script",
                action="store_true",
                help="also run the node's install.py (arbitrary code, around the image's constraints)",
            )

    q = nodes.add_parser("list", help="the image's and the volume's nodes, commit, import state")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(handler=cmd_list)
    q = nodes.add_parser("install", help="install a node from a git URL (@commit), a folder or an archive")
    q.add_argument(
        "source", metavar="SOURCE", help="https://github.com/o/r[@commit], /path/to/node, node.zip"
    )
    q.add_argument("--name", help="the node's folder name (default: from the source)")
    common(q, scripts=True)
    q.set_defaults(handler=cmd_install)
    q = nodes.add_parser("update", help="update a volume node (git: the newest commit, or --ref)")
    q.add_argument("name", metavar="NAME")
    q.add_argument("--ref", help="a commit, tag or branch to check out")
    common(q, scripts=True)
    q.set_defaults(handler=cmd_update)
    q = nodes.add_parser("remove", help="remove a volume node (its packages stay in the layer)")
    q.add_argument("name", metavar="NAME")
    common(q)
    q.set_defaults(handler=cmd_remove)
    q = nodes.add_parser("check", help="import state from the last ComfyUI start, missing requirements")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(handler=cmd_check)
