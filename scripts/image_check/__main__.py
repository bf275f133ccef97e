"""`make image-check`: build an image variant from docker/Dockerfile with buildah, boot it, check it.

    make image-check COMFYUI_SRC=DIR [VARIANT=minimal|standard|full] [NODES_SRC=DIR]
    python -m image_check --comfyui-src DIR [--variant V] [--nodes-src DIR] [--refresh-base]
                          [--no-build] [--no-boot]        (run from scripts/, or PYTHONPATH=scripts)

Exit codes: 0 every check passed; 1 a build step or a check failed; 2 something to provide
(a source folder, a tool), with what to do.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from . import base, boot, build, report, sources
from .config import NODE_IMAGE, SOURCE_STAGES, VARIANTS, CheckConfig, default_work_dir
from .run import CommandFailed, Log

TOOLS = {
    "buildah": "apt-get install buildah",
    "mmdebstrap": "apt-get install mmdebstrap",
    "npm": "apt-get install nodejs npm (or Node.js 20+)",
    "git": "apt-get install git",
}


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="image-check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    env = os.environ
    p.add_argument("--variant", default=env.get("VARIANT") or "minimal", choices=VARIANTS)
    p.add_argument(
        "--comfyui-src", type=Path, default=Path(env["COMFYUI_SRC"]) if env.get("COMFYUI_SRC") else None
    )
    p.add_argument("--nodes-src", type=Path, default=Path(env["NODES_SRC"]) if env.get("NODES_SRC") else None)
    p.add_argument("--work-dir", type=Path, default=default_work_dir())
    p.add_argument("--refresh-base", action="store_true", help="make the Debian and Node base images again")
    p.add_argument("--no-build", action="store_true", help="check the image already built")
    p.add_argument("--no-boot", action="store_true", help="build only")
    return p.parse_args(argv)


def preflight(args: argparse.Namespace) -> str | None:
    missing = [f"{tool} ({how})" for tool, how in TOOLS.items() if shutil.which(tool) is None]
    if missing:
        return "missing tools: " + "; ".join(missing)
    if os.geteuid() != 0:
        return "run as root: buildah --isolation chroot and mmdebstrap need it here"
    if args.comfyui_src is None and not args.no_build:
        version, commit = sources.comfyui_pin()
        return (
            "COMFYUI_SRC=DIR: a ComfyUI checkout at the pinned commit is needed "
            "(the check reaches no git host)\n"
            f"  ComfyUI v{version} = commit {commit}\n"
            f"  e.g. git clone --branch v{version} https://github.com/Comfy-Org/ComfyUI DIR\n"
            "  then: make image-check COMFYUI_SRC=DIR [VARIANT=standard NODES_SRC=DIR]"
        )
    return None


def main(argv: list[str]) -> int:
    args = parse(argv)
    problem = preflight(args)
    if problem:
        print(f"image-check: {problem}", file=sys.stderr)
        return 2
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    log = Log(work / "logs" / f"{args.variant}-{time.strftime('%Y%m%d-%H%M%S')}.log")
    config = CheckConfig(args.variant, args.comfyui_src, args.nodes_src, work)
    summary = report.Summary(config.variant, config.tag, log.path)
    started = time.monotonic()
    try:
        if not args.no_build:
            assert config.comfyui_src is not None
            try:
                comfy = sources.stage_comfyui(config.comfyui_src, work)
                nodes = sources.stage_nodes(config.variant, config.nodes_src, work)
            except sources.SourceError as exc:
                print(f"image-check: {exc}", file=sys.stderr)
                return 2
            summary.missing_files = comfy.missing + nodes.missing
            if summary.missing_files:
                log.say(
                    f"sources: {len(summary.missing_files)} tracked files are absent from the checkouts and "
                    f"will be absent from the image: {', '.join(summary.missing_files)}"
                )
            base.ensure_base(work, log, refresh=args.refresh_base)
            base.ensure_node(work, log, refresh=args.refresh_base)
            log.say(f"node image: {NODE_IMAGE}")
            contexts = dict(zip(SOURCE_STAGES, (comfy.path, nodes.path), strict=True))
            built = build.build(config, contexts, log)
            summary.build_seconds = built.seconds
            summary.size_bytes = built.size_bytes
            summary.torch_layers = build.shared_torch_layer()
        else:
            summary.size_bytes = build.image_size(config.tag)
        if not args.no_boot:
            boot.check_image(config, summary, log)
    except CommandFailed as exc:
        summary.fail("build", str(exc))
    finally:
        summary.figures["whole check"] = f"{time.monotonic() - started:.1f} s"
        print(summary.render())
        log.write(summary.render())
        log.close()
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
