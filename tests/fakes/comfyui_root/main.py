"""A fake ComfyUI 0.33 server for tests: same command line, endpoints, errors, WebSocket frames, logs.

Run it like the real one, from this folder:

    python main.py --listen 127.0.0.1 --port 8188 --output-directory OUT --input-directory IN \\
        --extra-model-paths-config a.yaml [--extra-model-paths-config b.yaml] [--cpu] ...

It follows COMFYUI.md, the team's notes on ComfyUI 0.33 (tests/comfyui checks it against the real
server's recordings in tests/data/comfyui-samples/): the node definitions are the real
`/object_info` (object_info.json.gz beside this file), model combos are filled from the folders
the yaml files name, and a few node types really run (see fake_comfy/nodes.py). Unknown
command-line flags are an argparse error (exit 2), as in ComfyUI.

Behaviour switches (environment variables):

    FAKE_COMFYUI_START_DELAY=S   seconds to wait before listening (ComfyUI takes 12-18 s; default 0)
    FAKE_COMFYUI_STEP_SECONDS=S  time per progress step of KSampler/ColorTransfer (default 0.01)
    FAKE_COMFYUI_MODE=M[,M...]   fault modes:
        crash               start, then exit 1 with a traceback before listening (after the delay)
        crash_after:N       listen, then exit 1 after N seconds ("Segmentation fault"-style death)
        hang                never listen; stays alive until signalled
        ignore_sigint       SIGINT is ignored (as when started with `&` from a script)
        ignore_sigterm      SIGTERM is ignored too (only SIGKILL stops it)
        exit_immediately    exit 1 at once, before reading any yaml
        bad_argv            listen, but /system_stats reports someone else's argv (a foreign server)
        history_lag:S       record a finished prompt in /history S seconds after its
                            execution_success frame (ComfyUI records it after that frame, before
                            the final `executing` with node null; a slow disk makes the gap visible)

Not imitated: `/view?preview=webp` and `channel=` (the file is served as stored), binary preview
frames on the WebSocket, real model loading (a loader accepts any file whose safetensors header
names a tensor; a broken header fails with safetensors' SafetensorError, a header without tensors
as ComfyUI's CheckpointLoaderSimple/VAELoader fail; `.ckpt`/`.pt` files are read as safetensors
too, where the real loader uses torch.load), running custom nodes: they are imported and listed as
ComfyUI does (fake_comfy/custom_nodes.py), not run.

Signals: SIGINT logs "Stopped server", wipes the temp folder and exits 0 - but only when SIGINT
was not already ignored when the process started (Python keeps an inherited SIG_IGN, exactly the
real ComfyUI's gotcha). SIGTERM kills it without that message.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fake_comfy.custom_nodes import load_all  # noqa: E402
from fake_comfy.folders import FolderTable  # noqa: E402
from fake_comfy.nodes import load_object_info  # noqa: E402
from fake_comfy.server import Config, EntryHandler, FakeComfy  # noqa: E402

log = logging.getLogger("fake_comfy")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="main.py")
    p.add_argument("--listen", type=str, default="127.0.0.1", nargs="?", const="0.0.0.0,::")
    p.add_argument("--port", type=int, default=8188)
    p.add_argument("--base-directory", type=str, default=None)
    p.add_argument("--output-directory", type=str, default=None)
    p.add_argument("--input-directory", type=str, default=None)
    p.add_argument("--temp-directory", type=str, default=None)
    p.add_argument("--user-directory", type=str, default=None)
    p.add_argument("--database-url", type=str, default=None)
    p.add_argument("--extra-model-paths-config", type=str, nargs="+", action="append", default=None)
    p.add_argument("--max-upload-size", type=float, default=100)
    p.add_argument("--preview-method", type=str, default="none")
    p.add_argument("--cuda-device", type=int, default=None)
    p.add_argument("--front-end-version", type=str, default=None)
    p.add_argument("--verbose", type=str, default="INFO", nargs="?", const="DEBUG")
    p.add_argument("--reserve-vram", type=float, default=None)
    p.add_argument("--whitelist-custom-nodes", type=str, nargs="+", default=[])
    for flag in (
        "--cpu",
        "--disable-api-nodes",
        "--disable-metadata",
        "--disable-auto-launch",
        "--auto-launch",
        "--dont-print-server",
        "--lowvram",
        "--normalvram",
        "--highvram",
        "--novram",
        "--gpu-only",
        "--fast",
        "--force-fp16",
        "--force-fp32",
        "--use-sage-attention",
        "--use-pytorch-cross-attention",
        "--disable-xformers",
        "--multi-user",
        "--log-stdout",
        "--quick-test-for-ci",
        "--disable-all-custom-nodes",
        "--enable-cors-header",
        "--enable-manager",
        "--disable-manager-ui",
    ):
        p.add_argument(flag, action="store_true")
    return p.parse_args(argv)


def modes() -> dict[str, str]:
    out: dict[str, str] = {}
    for part in os.environ.get("FAKE_COMFYUI_MODE", "").split(","):
        part = part.strip()
        if part:
            key, _, value = part.partition(":")
            out[key] = value
    return out


def setup_logging(entries: EntryHandler) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.addHandler(entries)
    log.setLevel(logging.INFO)
    log.propagate = False


def main() -> None:
    mode = modes()
    if "exit_immediately" in mode:
        print(
            "fake ComfyUI: exiting at once (FAKE_COMFYUI_MODE=exit_immediately)", file=sys.stderr, flush=True
        )
        sys.exit(1)
    if "ignore_sigint" in mode:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if "ignore_sigterm" in mode:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sigint_live = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    args = parse_args(sys.argv[1:])

    from collections import deque

    entries: deque[dict[str, str]] = deque(maxlen=300)
    setup_logging(EntryHandler(entries))
    print(f"Checkpoint files will always be loaded safely.\nPython version: {sys.version}", flush=True)

    base = Path(os.path.abspath(args.base_directory)) if args.base_directory else HERE
    folders = FolderTable(base)
    default_yaml = HERE / "extra_model_paths.yaml"
    if default_yaml.is_file():
        folders.load_yaml(str(default_yaml))
    for group in args.extra_model_paths_config or []:
        for path in group:
            folders.load_yaml(path)

    output_dir = Path(os.path.abspath(args.output_directory)) if args.output_directory else base / "output"
    if args.output_directory:
        log.info("\x1b[32m[INFO]\x1b[0m Setting output directory to: %s", output_dir)
    folders.add_output_extras(output_dir)
    input_dir = Path(os.path.abspath(args.input_directory)) if args.input_directory else base / "input"
    if args.input_directory:
        log.info("\x1b[32m[INFO]\x1b[0m Setting input directory to: %s", input_dir)
    user_dir = Path(os.path.abspath(args.user_directory)) if args.user_directory else base / "user"
    if args.user_directory:
        log.info("\x1b[32m[INFO]\x1b[0m Setting user directory to: %s", user_dir)
    temp_dir = (Path(os.path.abspath(args.temp_directory)) if args.temp_directory else base) / "temp"

    for folder in folders.paths.get("custom_nodes", []):  # prestartup scripts: a missing dir crashes
        os.listdir(folder)

    delay = float(os.environ.get("FAKE_COMFYUI_START_DELAY", "0") or 0)
    if delay > 0:
        time.sleep(delay)
    if "crash" in mode:
        raise RuntimeError("fake ComfyUI crashed during start-up (FAKE_COMFYUI_MODE=crash)")
    if "hang" in mode:
        log.info("fake ComfyUI: hanging before listening (FAKE_COMFYUI_MODE=hang)")
        while True:
            time.sleep(3600)

    shutil.rmtree(temp_dir, ignore_errors=True)
    for folder in (output_dir, input_dir):
        folder.mkdir(parents=True, exist_ok=True)

    object_info = load_object_info(HERE / "object_info.json.gz")
    if not args.disable_all_custom_nodes or args.whitelist_custom_nodes:
        load_all(
            folders.paths.get("custom_nodes", []),
            object_info,
            disable_all=args.disable_all_custom_nodes,
            whitelist=args.whitelist_custom_nodes,
        )

    cfg = Config(
        argv=list(sys.argv),
        output_dir=output_dir,
        input_dir=input_dir,
        temp_dir=temp_dir,
        user_dir=user_dir,
        folders=folders,
        object_info=object_info,
        cpu=args.cpu,
        max_upload=int(args.max_upload_size * 1024 * 1024),
        metadata=not args.disable_metadata,
        step_seconds=float(os.environ.get("FAKE_COMFYUI_STEP_SECONDS", "0.01") or 0.01),
        foreign_argv="bad_argv" in mode,
        cors=bool(args.enable_cors_header),
        history_lag=float(mode.get("history_lag") or 0),
        log_entries=entries,
    )
    crash_after = float(mode["crash_after"]) if "crash_after" in mode else None
    code = asyncio.run(serve(FakeComfy(cfg), args, sigint_live, crash_after))
    shutil.rmtree(temp_dir, ignore_errors=True)
    sys.exit(code)


async def serve(
    fake: FakeComfy, args: argparse.Namespace, sigint_live: bool, crash_after: float | None
) -> int:
    from aiohttp import web

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    if sigint_live:
        loop.add_signal_handler(signal.SIGINT, stop.set)
    runner = web.AppRunner(fake.app(), access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    hosts = [h for h in args.listen.split(",") if h]
    try:
        for host in hosts:
            await web.TCPSite(runner, host, args.port).start()
    except OSError:
        log.error(
            "Port %s is already in use on address %s. Please close the other application "
            "or use a different port with --port.",
            args.port,
            hosts[0],
        )
        await runner.cleanup()
        return 1
    worker = asyncio.create_task(fake.executor.worker())
    log.info("Starting server\n")
    shown = "127.0.0.1" if hosts[0] in ("0.0.0.0", "::") else hosts[0]
    log.info("To see the GUI go to: http://%s:%s", shown, args.port)
    if crash_after is not None:
        loop.call_later(crash_after, _die)
    await stop.wait()
    worker.cancel()
    await runner.cleanup()
    log.info("\nStopped server")
    return 0


def _die() -> None:
    print(
        "Fatal Python error: Segmentation fault (FAKE_COMFYUI_MODE=crash_after)", file=sys.stderr, flush=True
    )
    os._exit(1)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("\nStopped server", flush=True)
        sys.exit(0)
