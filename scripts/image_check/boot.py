"""Boot the image twice on one /workspace and check what a user gets.

First boot: /health within 5 s, ComfyUI ready (CPU) within 120 s, the model-free demo queued
through the dashboard API writes a PNG into /workspace/output, nginx asks for the login on both
public ports, the image's HEALTHCHECK exits 0, ComfyUI runs with its venv first on PATH and the
constraints applied, its log has no database error and no failed import, `comfyui-docker` is on a
login shell's PATH, SIGTERM to PID 1 ends every process within 10 s with exit 0.
Second boot on the same /workspace: the output, the saved setting and a model are still there.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from pathlib import Path

import psutil

from .config import CheckConfig
from .container import TOKEN, Container, Ports, request, wait_for
from .report import Summary
from .run import Log

BEARER = {"Authorization": f"Bearer {TOKEN}"}
HTML = {"Accept": "text/html"}
HEALTH_LIMIT = 5.0
READY_LIMIT = 120.0
STOP_LIMIT = 10.0
MODEL = "models/checkpoints/image-check.safetensors"


def _ok(port: int, path: str, headers: dict[str, str] | None = None) -> bool:
    return request(port, path, headers=headers, timeout=2).status == 200


def _boot_until_ready(ctr: Container, summary: Summary, label: str) -> bool:
    ctr.boot()
    ports = ctr.ports
    health = wait_for(lambda: _ok(ports.dashboard, "/health"), READY_LIMIT)
    summary.add(
        f"{label}: /health on the public port within {HEALTH_LIMIT:.0f} s",
        health is not None and health <= HEALTH_LIMIT,
        f"{health:.2f} s" if health is not None else "never answered",
    )
    if health is None:
        return False
    ready = wait_for(lambda: _ok(ports.dashboard, "/health/ready"), READY_LIMIT - health, interval=0.1)
    total = None if ready is None else health + ready
    summary.figures[f"{label}: -> /health"] = f"{health:.2f} s"
    summary.figures[f"{label}: -> ComfyUI ready"] = f"{total:.1f} s" if total is not None else "not ready"
    return summary.add(
        f"{label}: ComfyUI ready (CPU) within {READY_LIMIT:.0f} s",
        total is not None,
        f"{total:.1f} s" if total is not None else "not ready (see the container log)",
    )


def _demo(ctr: Container, ws: Path, summary: Summary) -> None:
    """The Generate page's model-free demo (EmptyImage -> SaveImage), queued as the page does."""
    body = json.dumps({"builtin": "demo", "values": {"width": 64, "height": 48}, "client_id": "image-check"})
    resp = request(
        ctr.ports.dashboard, "/api/generate", method="POST", body=body.encode(),
        headers={**BEARER, "Content-Type": "application/json"},
    )  # fmt: skip
    if resp.status != 200:
        summary.fail("demo queued through the dashboard API", f"HTTP {resp.status}: {resp.body[:300]!r}")
        return
    took = wait_for(lambda: any((ws / "output").rglob("*.png")), 60, interval=0.2)
    pngs = sorted(p.relative_to(ws) for p in (ws / "output").rglob("*.png"))
    good = took is not None and (ws / pngs[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary.add(
        "demo queued through the dashboard API writes a PNG into /workspace/output",
        good,
        f"{pngs[0]} after {took:.1f} s" if good and took is not None else "no PNG within 60 s",
    )


def _login_required(ctr: Container, summary: Summary) -> None:
    for name, port in (("dashboard", ctr.ports.dashboard), ("ComfyUI", ctr.ports.comfyui)):
        resp = request(port, "/", headers=HTML)
        asks = resp.status in (302, 303) and resp.headers.get("location", "").startswith("/login")
        api = request(port, "/api/comfyui/system_stats" if name == "dashboard" else "/system_stats")
        with_token = request(
            port, "/api/comfyui/system_stats" if name == "dashboard" else "/system_stats", headers=BEARER
        )
        summary.add(
            f"nginx asks for the login on the {name} port ({port})",
            asks and api.status == 401 and with_token.status == 200,
            f"GET / -> {resp.status} {resp.headers.get('location', '')}; API without token -> {api.status}, "
            f"with token -> {with_token.status}",
        )


def _healthcheck(ctr: Container, summary: Summary) -> None:
    test = list((ctr.config.get("Healthcheck") or {}).get("Test") or [])
    if not test or test[0] not in ("CMD", "CMD-SHELL"):
        summary.fail("the image's HEALTHCHECK exits 0", f"no HEALTHCHECK in the image config: {test}")
        return
    command = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]
    proc = ctr.exec(command)
    summary.add(
        "the image's HEALTHCHECK exits 0",
        proc.returncode == 0,
        f"{' '.join(command)} -> {proc.returncode} {(proc.stdout + proc.stderr).strip()[:200]}",
    )


def _login_shell(ctr: Container, summary: Summary) -> None:
    # As over SSH: a login shell with none of the image's ENV.
    proc = ctr.exec(
        [
            "env",
            "-i",
            "HOME=/root",
            "TERM=dumb",
            "/bin/bash",
            "-lc",
            "command -v comfyui-docker && comfyui-docker version",
        ]
    )
    summary.add(
        "comfyui-docker is on a login shell's PATH (as over SSH)",
        proc.returncode == 0,
        (proc.stdout + proc.stderr).strip().replace("\n", " ")[:200],
    )


def _comfyui_process(ctr: Container, ws: Path, summary: Summary) -> None:
    proc = ctr.comfyui_process()
    if proc is None:
        summary.fail("ComfyUI's environment", "no ComfyUI process found")
        return
    try:
        env = proc.environ()
        argv = proc.cmdline()
    except psutil.Error as exc:
        summary.fail("ComfyUI's environment", str(exc))
        return
    first = env.get("PATH", "").split(":")[0]
    # The volume's package layer (issue 15) writes its own constraints file, which pins every package
    # of the image and merges the image's /app/comfyui/constraints.txt in; without a layer ComfyUI gets
    # the image's file. Either way pip and uv must read the same one, and it must refuse another torch.
    constraints = env.get("PIP_CONSTRAINT", "")
    good = (
        first == "/app/comfyui/venv/bin"
        and constraints == env.get("UV_CONSTRAINT")
        and (constraints == "/app/comfyui/constraints.txt" or constraints.startswith("/workspace/python/"))
    )
    summary.add(
        "ComfyUI runs with its venv first on PATH and PIP_CONSTRAINT/UV_CONSTRAINT set",
        good,
        f"PATH starts {first}; PIP_CONSTRAINT={constraints}; UV_CONSTRAINT={env.get('UV_CONSTRAINT')}",
    )
    summary.add("ComfyUI runs with --enable-manager", "--enable-manager" in argv, " ".join(argv[1:])[:240])
    pip = ["/app/comfyui/venv/bin/python", "-m", "pip", "install", "--dry-run", "--no-deps"]
    constraint = ctr.exec(
        [*pip, "--constraint", constraints or "/app/comfyui/constraints.txt", "torch==2.8.0"]
    )
    said = [ln for ln in (constraint.stdout + constraint.stderr).splitlines() if "ResolutionImpossible" in ln]
    summary.add(
        "the constraints ComfyUI gets refuse another torch (pip)",
        constraint.returncode != 0 and bool(said),
        said[0].strip()[:120] if said else f"exit {constraint.returncode}, no resolution conflict reported",
    )
    log = (
        (ws / "logs" / "comfyui.log").read_text(errors="replace")
        if (ws / "logs" / "comfyui.log").exists()
        else ""
    )
    bad = [
        line.strip()[:160]
        for line in log.splitlines()
        if re.search(r"Failed to initialize database|IMPORT FAILED", line)
    ]
    summary.add(
        "ComfyUI's log: no database error, no failed import",
        bool(log) and not bad,
        "; ".join(bad[:3]) or f"{len(log.splitlines())} lines read",
    )


# Run inside the image with ComfyUI's Python: what the build promises about the venv's contents.
CONTENTS = """
import importlib.metadata as m, os, shutil, sys
has_cv2 = lambda d: any(str(f) == "cv2/__init__.py" for f in d.files or [])
cv2 = sorted(d.metadata["Name"] for d in m.distributions() if has_cv2(d))
assert len(cv2) <= 1, f"several packages install cv2: {cv2}"
if cv2:
    import cv2 as c
    assert hasattr(c, "ximgproc"), "cv2 has no contrib modules"
assert shutil.which("gcc"), "no C compiler (Triton builds its launcher with it)"
v = sys.version_info
assert os.path.exists(f"/usr/include/python{v.major}.{v.minor}/Python.h"), "no Python.h"
print(f"cv2 from {cv2 or 'no package'}; gcc and Python.h present")
"""


def _contents(ctr: Container, summary: Summary) -> None:
    proc = ctr.exec(["/app/comfyui/venv/bin/python", "-c", CONTENTS])
    out = (proc.stdout + proc.stderr).strip().splitlines()
    summary.add(
        "one OpenCV (with contrib) at most; gcc and Python's headers for Triton",
        proc.returncode == 0,
        out[-1][:200] if out else f"exit {proc.returncode}",
    )


def _save_state(ctr: Container, ws: Path, summary: Summary) -> None:
    resp = request(
        ctr.ports.dashboard,
        "/settings",
        method="POST",
        body=b"download_parallel_files=5&startup_presets=",
        headers={**BEARER, "Content-Type": "application/x-www-form-urlencoded", "HX-Request": "true"},
    )
    summary.add(
        "a setting saved through the dashboard",
        resp.status == 200 and (ws / "config" / "user_settings.yaml").exists(),
        f"POST /settings -> {resp.status}",
    )
    model = ws / MODEL
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_bytes(b"\0" * 64)


def _kept_state(ctr: Container, ws: Path, outputs: list[Path], summary: Summary) -> None:
    kept = [p for p in outputs if (ws / p).is_file()]
    summary.add(
        "second boot keeps the outputs", bool(outputs) and kept == outputs, f"{len(kept)}/{len(outputs)} PNGs"
    )
    page = request(ctr.ports.dashboard, "/settings", headers=BEARER).body.decode(errors="replace")
    summary.add(
        "second boot keeps the settings",
        re.search(r'name="download_parallel_files" value="5"', page) is not None,
        "download_parallel_files = 5 on the Settings page",
    )
    resp = request(ctr.ports.dashboard, "/api/comfyui/models/checkpoints", headers=BEARER)
    listed = resp.status == 200 and "image-check.safetensors" in resp.json()
    summary.add(
        "second boot keeps the models (ComfyUI lists them)",
        listed,
        f"/models/checkpoints -> {resp.status} {resp.body[:120]!r}",
    )


def _shutdown(ctr: Container, summary: Summary, label: str) -> None:
    seconds, code, survivors = ctr.stop(STOP_LIMIT)
    summary.figures[f"{label}: SIGTERM -> exit"] = f"{seconds:.2f} s" if seconds is not None else "timeout"
    summary.add(
        f"{label}: SIGTERM to PID 1 ends every process within {STOP_LIMIT:.0f} s with exit 0",
        seconds is not None and code == 0 and not survivors,
        f"{seconds:.2f} s, exit {code}"
        if seconds is not None
        else f"still running after {STOP_LIMIT:.0f} s" + (f"; left: {survivors}" if survivors else ""),
    )


def check_image(config: CheckConfig, summary: Summary, log: Log) -> None:
    ws = Path(tempfile.mkdtemp(prefix="image-check-ws-", dir=config.work_dir))
    boot_log = config.work_dir / "logs" / f"{config.variant}-boot-{time.strftime('%Y%m%d-%H%M%S')}.log"
    containers: list[Container] = []
    try:
        first = Container(config.tag, ws, Ports(), boot_log)
        containers.append(first)
        log.say(f"boot 1: {first.name}, ports {first.ports.env()}, /workspace = {ws}")
        if _boot_until_ready(first, summary, "boot 1"):
            _demo(first, ws, summary)
            _login_required(first, summary)
            _healthcheck(first, summary)
            _comfyui_process(first, ws, summary)
            _login_shell(first, summary)
            _contents(first, summary)
            _save_state(first, ws, summary)
        outputs = (
            sorted(p.relative_to(ws) for p in (ws / "output").rglob("*.png"))
            if (ws / "output").exists()
            else []
        )
        _shutdown(first, summary, "boot 1")
        second = Container(config.tag, ws, Ports(), boot_log)
        containers.append(second)
        log.say(f"boot 2: {second.name} on the same /workspace")
        if _boot_until_ready(second, summary, "boot 2"):
            _kept_state(second, ws, outputs, summary)
        _shutdown(second, summary, "boot 2")
    finally:
        for ctr in containers:
            ctr.remove()
        shutil.rmtree(ws, ignore_errors=True)
        log.say(f"boot log: {boot_log}")
