"""Start the fake (or a real) ComfyUI as a subprocess for tests: `with run_comfyui(tmp_path) as c: c.url`.

Usable from any test (tests/ is on sys.path): `from fakes.comfyui_root.launch import run_comfyui`.
`COMFYUI_ROOT`/`COMFYUI_PYTHON` select a real ComfyUI when `real=True` (see `real_comfyui_root`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ports import free_port

FAKE_ROOT = Path(__file__).resolve().parent

BASIC_YAML = """\
myvol:
  base_path: {vol}
  checkpoints: models/checkpoints
  loras: models/lora
  vae: models/vae
"""

# A valid safetensors file without tensors (header length + "{}"), like the samples' tiny x.safetensors:
# a real CheckpointLoaderSimple reads it and fails with "Could not detect model type" (ws_g4_error.json),
# while arbitrary bytes fail earlier in safetensors ("Error while deserializing header: header too large").
TINY_SAFETENSORS = (2).to_bytes(8, "little") + b"{}"


def real_comfyui_root() -> tuple[Path | None, str]:
    """(root, why-not): a real ComfyUI named by COMFYUI_ROOT, never this fake."""
    raw = os.environ.get("COMFYUI_ROOT", "")
    if not raw:
        return None, "COMFYUI_ROOT is not set (point it at a real ComfyUI 0.33 install to run these)"
    root = Path(raw).resolve()
    if not (root / "main.py").is_file():
        return None, f"COMFYUI_ROOT={raw} has no main.py"
    if root == FAKE_ROOT:
        return None, "COMFYUI_ROOT points at the fake ComfyUI, not a real one"
    return root, ""


def python_for(root: Path) -> str:
    env_py = os.environ.get("COMFYUI_PYTHON")
    if env_py:
        return env_py
    for cand in (root.parent / "venv", root / "venv", root / ".venv"):
        if (cand / "bin" / "python").exists():
            return str(cand / "bin" / "python")
    return sys.executable


@dataclass
class Layout:
    """The sample server's layout (comfyui-samples/README.md): basic yaml, one x.safetensors per folder."""

    base: Path
    output: Path = field(init=False)
    input: Path = field(init=False)
    temp: Path = field(init=False)
    vol: Path = field(init=False)
    yaml: Path = field(init=False)

    def __post_init__(self) -> None:
        self.output = self.base / "output"
        self.input = self.base / "uploads"
        self.temp = self.base / "tmp"
        self.vol = self.base / "vol"
        self.yaml = self.base / "config" / "extra_model_paths.yaml"
        for sub in ("models/checkpoints", "models/lora", "models/vae"):
            (self.vol / sub).mkdir(parents=True, exist_ok=True)
            (self.vol / sub / "x.safetensors").write_bytes(TINY_SAFETENSORS)
        for folder in (self.output, self.input, self.temp, self.yaml.parent):
            folder.mkdir(parents=True, exist_ok=True)
        self.yaml.write_text(BASIC_YAML.format(vol=self.vol), encoding="utf-8")


@dataclass
class Comfy:
    proc: subprocess.Popen[bytes]
    port: int
    argv: list[str]
    layout: Layout
    log_path: Path
    root: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def command(
    python: str, port: int, layout: Layout, extra: Sequence[str] = (), yamls: Sequence[Path] | None = None
) -> list[str]:
    argv = [python, "main.py", "--listen", "127.0.0.1", "--port", str(port)]
    argv += ["--output-directory", str(layout.output), "--input-directory", str(layout.input)]
    argv += ["--temp-directory", str(layout.temp)]
    for y in [layout.yaml] if yamls is None else yamls:
        argv += ["--extra-model-paths-config", str(y)]
    return [*argv, *extra]


def ready(url: str, output_dir: Path, timeout: float = 1.0) -> bool:
    """COMFYUI.md §7: /system_stats answers 200 and its argv holds our --output-directory."""
    try:
        with urllib.request.urlopen(f"{url}/system_stats", timeout=timeout) as resp:
            if resp.status != 200:
                return False
            argv = json.loads(resp.read())["system"]["argv"]
    except (OSError, ValueError, KeyError):
        return False
    return str(output_dir) in argv


def wait_ready(comfy: Comfy, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if comfy.proc.poll() is not None:
            raise RuntimeError(f"ComfyUI exited with {comfy.proc.returncode}:\n{comfy.log()[-3000:]}")
        if ready(comfy.url, comfy.layout.output):
            return
        time.sleep(0.05)
    raise TimeoutError(f"ComfyUI not ready after {timeout} s:\n{comfy.log()[-3000:]}")


@contextmanager
def run_comfyui(
    base: Path,
    *,
    root: Path = FAKE_ROOT,
    extra_args: Sequence[str] = ("--cpu",),
    env: Mapping[str, str] | None = None,
    yamls: Sequence[Path] | None = None,
    wait: bool = True,
    timeout: float = 60.0,
) -> Iterator[Comfy]:
    """Start ComfyUI (the fake by default) on a free loopback port; stop it with SIGINT, then SIGKILL."""
    layout = Layout(base)
    port = free_port()
    argv = command(python_for(root) if root != FAKE_ROOT else sys.executable, port, layout, extra_args, yamls)
    log_path = base / "comfyui.log"
    full_env = {**os.environ, **(env or {})}
    with log_path.open("wb") as log_fh:
        proc = subprocess.Popen(
            argv,
            cwd=root,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
            restore_signals=True,
        )
    comfy = Comfy(proc, port, argv, layout, log_path, root)
    try:
        if wait:
            wait_ready(comfy, timeout)
        yield comfy
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """Tiny blocking HTTP helper: (status, headers, body) without raising on 4xx/5xx."""
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()
