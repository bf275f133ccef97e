"""Volume commands: init, paths, doctor, version, migrate."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

from .. import __version__
from ..logs import configure
from ..model_paths import MODEL_FOLDERS
from ..settings import Settings
from ..user_yaml import check_user_yaml
from ..workspace import Workspace


def load_settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    configure(settings.log_level, None, verbose=getattr(args, "verbose", False))
    return settings


def cmd_init(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    ws = Workspace(settings.workspace_root)
    report = ws.init()
    print(f"workspace: {ws.root} ({len(report.created)} folder(s) created)")
    print(f"wrote:     {ws.generated_yaml}")
    if report.disk:
        print(f"free:      {report.disk.free / 1024**3:.1f} GiB of {report.disk.total / 1024**3:.1f} GiB")
    usable, problems = check_user_yaml(ws.user_yaml)
    for prob in problems:
        print(f"{'error' if prob.fatal else 'warning'}: {ws.user_yaml.name}{prob}", file=sys.stderr)
    if ws.user_yaml.is_file() and not usable:
        print(f"warning: {ws.user_yaml} is broken and will not be passed to ComfyUI", file=sys.stderr)
    for msg in report.problems:
        print(f"warning: {msg}", file=sys.stderr)
    return 0


def cmd_paths(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    ws = Workspace(settings.workspace_root)
    if args.json:
        table = {name: str(ws.model_folder(name)) for name in MODEL_FOLDERS}
        print(json.dumps({"yaml": str(ws.generated_yaml), "folders": table}, indent=2))
        return 0
    if ws.generated_yaml.is_file():
        print(f"# {ws.generated_yaml}")
        print(ws.generated_yaml.read_text(encoding="utf-8"))
    else:
        print(f"# {ws.generated_yaml} does not exist yet: run `comfyui-docker init`")
    print(f"{'folder type':<24} path")
    for name in MODEL_FOLDERS:
        print(f"{name:<24} {ws.model_folder(name)}")
    print(f"{'(output)':<24} {ws.output}   --output-directory")
    print(f"{'(input)':<24} {ws.uploads}   --input-directory")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from ..doctor import exit_code, run_checks  # imported here: `start` does not need it

    settings = load_settings(args)
    findings = run_checks(settings, probe=not args.offline)
    if args.json:
        print(json.dumps([f.__dict__ for f in findings], indent=2))
        return exit_code(findings)
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    for f in findings:
        print(f"[{marks[f.level]}] {f.topic}: {f.message}")
        if f.fix and f.level != "ok":
            print(f"       -> {f.fix}")
    return exit_code(findings)


def cmd_version(args: argparse.Namespace) -> int:
    print(f"comfyui-docker {__version__} (Python {platform.python_version()})")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from ..migrate import migrate

    settings = load_settings(args)
    source = Path(args.source).resolve()
    if not source.is_dir():
        print(f"error: {source} is not a folder", file=sys.stderr)
        return 2
    ws = Workspace(settings.workspace_root)
    if not args.dry_run:
        ws.ensure()
    report = migrate(source, ws.models, dry_run=args.dry_run)
    verb = "would " if args.dry_run else ""
    for src, dst in report.moved:
        print(f"{verb}move  {src} -> {dst}")
    for src, dst in report.copied:
        print(f"{verb}copy  {src} -> {dst}")
    for src, dst in report.duplicates:
        print(f"{verb}drop  {src} (identical file already at {dst})")
    for src, dst in report.conflicts:
        print(f"CONFLICT {src}: a different file already exists at {dst}; left alone", file=sys.stderr)
    for src, why in report.skipped:
        print(f"skip  {src}: {why}")
    print(
        f"{len(report.moved)} moved, {len(report.copied)} copied, {len(report.duplicates)} duplicates, "
        f"{len(report.conflicts)} conflicts, {len(report.skipped)} skipped"
    )
    return 0 if report.ok else 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("init", help="create the volume layout and write extra_model_paths.yaml")
    p.set_defaults(handler=cmd_init)
    p = sub.add_parser("paths", help="print the generated yaml and the folder table")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_paths)
    p = sub.add_parser("doctor", help="check the volume, model paths, ComfyUI and disk; exit 1 on a problem")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--offline", action="store_true", help="do not probe ComfyUI")
    p.set_defaults(handler=cmd_doctor)
    p = sub.add_parser("version", help="print the version")
    p.set_defaults(handler=cmd_version)
    p = sub.add_parser("migrate", help="move model files from an old layout into the volume")
    p.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="OLD_MODELS_DIR",
        help="the old models folder, e.g. /workspace/ComfyUI/models",
    )
    p.add_argument("--dry-run", action="store_true", help="print what would happen, change nothing")
    p.set_defaults(handler=cmd_migrate)
