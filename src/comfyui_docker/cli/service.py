"""Service commands: start, health, restart, logs.

    start                the runtime (the image's entry point): dashboard, ComfyUI, nginx, downloads
    health [--json] [--ready]
                         asks the running dashboard (GET /health, GET /health/ready); exit 0 when it
                         answers and nothing is broken for good (ComfyUI not fatal/blocked); with
                         --ready, only when ComfyUI is ready. For Docker's HEALTHCHECK. With
                         MODE=serverless (no dashboard): exit 0 when ComfyUI answers.
    restart              POST /api/service/comfyui/restart on the running dashboard
    logs [-n N] [--follow] [SOURCE]
                         the tail of workspace/logs/SOURCE.log (default comfyui)

HTTP goes to the dashboard on 127.0.0.1 (its internal port when nginx is in front). With
ACCESS_PASSWORD set, requests carry `Authorization: Bearer <token>` (API_TOKEN, or the token the
dashboard derives from the password).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ..settings import Settings


def _base_url(settings: Settings) -> str:
    port = settings.dashboard_internal_port if settings.enable_nginx else settings.dashboard_port
    return f"http://127.0.0.1:{port}"


def _token(settings: Settings) -> str | None:
    if settings.api_token:
        return settings.api_token.get()
    if not settings.access_password:
        return None
    from ..web.auth import api_token_for

    return api_token_for(settings)


def _call(
    settings: Settings, method: str, path: str, timeout: float, url: str | None = None
) -> tuple[int, Any]:
    base = (url or _base_url(settings)).rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise OSError(f"{base} is not an http(s) URL")
    req = urllib.request.Request(base + path, method=method)  # noqa: S310 - scheme checked above
    token = _token(settings)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def cmd_start(args: argparse.Namespace) -> int:
    from ..startup import main

    return main(Settings.from_env())


def _serverless_health(settings: Settings, args: argparse.Namespace) -> int:
    """MODE=serverless runs no dashboard: healthy when ComfyUI answers on its loopback port."""
    try:
        url = settings.comfyui_url + "/system_stats"  # http://127.0.0.1:PORT, built by Settings
        with urllib.request.urlopen(url, timeout=args.timeout) as resp:  # noqa: S310
            ok = resp.status == 200
    except (OSError, urllib.error.URLError):
        ok = False
    if args.json:
        print(json.dumps({"live": ok, "ok": ok, "mode": "serverless", "comfyui": {"answers": ok}}, indent=2))
    else:
        state = "healthy: serverless worker, ComfyUI answers" if ok else "unhealthy: ComfyUI does not answer"
        print(state)
    return 0 if ok else 1


def cmd_health(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if os.environ.get("MODE") == "serverless" and not args.url:
        return _serverless_health(settings, args)
    try:
        status, _ = _call(settings, "GET", "/health", args.timeout, args.url)
    except (OSError, urllib.error.URLError) as exc:
        out = {
            "live": False,
            "error": f"the dashboard does not answer at {args.url or _base_url(settings)}: {exc}",
        }
        print(json.dumps(out, indent=2) if args.json else f"unhealthy: {out['error']}")
        return 1
    if status != 200:
        print(json.dumps({"live": False, "status": status}) if args.json else f"unhealthy: /health {status}")
        return 1
    try:
        _, detail = _call(settings, "GET", "/health/ready", args.timeout, args.url)
    except (OSError, urllib.error.URLError) as exc:
        detail = {"error": str(exc)}
    detail = detail if isinstance(detail, dict) else {"raw": detail}
    ready = bool(detail.get("ready"))
    comfy = detail.get("comfyui") or {}
    healthy = bool(detail.get("healthy", comfy.get("state") not in ("fatal", "blocked")))
    ok = ready if args.ready else healthy
    if args.json:
        print(json.dumps({"live": True, "ok": ok, **detail}, indent=2))
    else:
        state = comfy.get("state", "unknown")
        print(f"{'healthy' if ok else 'unhealthy'}: dashboard up, ComfyUI {state}")
        if comfy.get("detail"):
            print(f"  {comfy['detail']}")
    return 0 if ok else 1


def cmd_restart(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        status, body = _call(settings, "POST", "/api/service/comfyui/restart", args.timeout, args.url)
    except (OSError, urllib.error.URLError) as exc:
        print(f"error: the dashboard does not answer: {exc}", file=sys.stderr)
        return 1
    if status not in (200, 202):
        err = body.get("error", {}) if isinstance(body, dict) else {}
        print(f"error: restart refused ({status}): {err.get('message', body)}", file=sys.stderr)
        return 1
    print("ComfyUI is restarting")
    return 0


def _tail(path: Path, n: int) -> list[str]:
    if not path.is_file():
        return []
    with path.open("rb") as fh:
        end = fh.seek(0, 2)
        fh.seek(max(0, end - 512 * 1024))
        lines = fh.read().decode("utf-8", "replace").splitlines()
    return lines[-n:]


def cmd_logs(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    path = settings.workspace_root / "logs" / f"{args.source}.log"
    if not path.is_file() and not args.follow:
        print(f"error: {path} does not exist (yet)", file=sys.stderr)
        return 1
    for line in _tail(path, args.lines):
        print(line)
    if not args.follow:
        return 0
    pos = path.stat().st_size if path.is_file() else 0
    try:
        while True:
            time.sleep(0.3)
            if not path.is_file():
                continue
            size = path.stat().st_size
            if size < pos:  # rotated
                pos = 0
            if size > pos:
                with path.open("rb") as fh:
                    fh.seek(pos)
                    chunk = fh.read()
                pos += len(chunk)
                sys.stdout.write(chunk.decode("utf-8", "replace"))
                sys.stdout.flush()
    except KeyboardInterrupt:
        return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("start", help="run the dashboard, ComfyUI (supervised), nginx and downloads")
    p.set_defaults(handler=cmd_start)
    p = sub.add_parser("health", help="ask the running dashboard; exit 0 healthy, 1 not (for HEALTHCHECK)")
    p.add_argument("--json", action="store_true", help="print the full readiness report")
    p.add_argument("--ready", action="store_true", help="exit 0 only when ComfyUI is ready")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per request (default 5)")
    p.add_argument("--url", default=None, help="dashboard URL (default: 127.0.0.1 and its port)")
    p.set_defaults(handler=cmd_health)
    p = sub.add_parser("restart", help="restart ComfyUI through the running dashboard")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--url", default=None, help="dashboard URL (default: 127.0.0.1 and its port)")
    p.set_defaults(handler=cmd_restart)
    p = sub.add_parser("logs", help="print the tail of a log in workspace/logs (default: comfyui)")
    p.add_argument("source", nargs="?", default="comfyui", help="comfyui, dashboard, nginx-error, ...")
    p.add_argument("-n", "--lines", type=int, default=100)
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.set_defaults(handler=cmd_logs)
