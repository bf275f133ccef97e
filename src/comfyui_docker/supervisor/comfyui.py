"""ComfyUI's process spec: its command line, environment and readiness probe.

    python main.py --listen 127.0.0.1 --port COMFYUI_INTERNAL_PORT
        --output-directory WS/output --input-directory WS/uploads
        --user-directory WS/user
        --extra-model-paths-config WS/config/extra_model_paths.yaml
        [--extra-model-paths-config WS/config/extra_model_paths.user.yaml]   (when usable)
        --database-url sqlite:///TMP/comfyui-docker/comfyui-PORT/comfyui.db
        [--enable-manager]                          (its pip package is in ComfyUI's venv)
        [--disable-all-custom-nodes --whitelist-custom-nodes NAME...]  (a volume node left out)
        [--cpu]                                                               (no GPU, see gpu.py)
        COMFYUI_EXTRA_ARGS...

`--user-directory` goes on the volume: ComfyUI's settings and the workflows saved in its own UI
live there and must survive a pod restart. The SQLite database stays on the container's own disk:
SQLite is unsafe on network volumes shared by several pods. ComfyUI's default for it
(COMFYUI_ROOT/user/comfyui.db) does not follow `--user-directory` and its folder does not exist
in the image, so ComfyUI logged "Failed to initialize database" at every start; the temp folder
stays at its default (wiped at every start anyway).

ComfyUI's environment starts from an allow-list of ours (`comfyui_env`): paths, locale, proxies and GPU /
library settings, plus the names in COMFYUI_PASS_ENV. ACCESS_PASSWORD, API_TOKEN, HF_TOKEN,
CIVITAI_TOKEN, PUBLIC_KEY and anything else not listed stay out: every custom node runs in that
process and could read them.

On top of it, ComfyUI's own venv comes first on PATH (nodes that run `pip`, `python` or a
console script of the venv find ComfyUI's), and, where the image ships one, applies the
constraints file beside the venv to every pip and uv run (PIP_CONSTRAINT, UV_CONSTRAINT):
ComfyUI-Manager cannot replace torch, its CUDA libraries or the image's one OpenCV.

`extend_env` adds to that environment: the volume's package layer (nodes/layer.py:
COMFYUI_DOCKER_PYTHON_LAYER, PIP_PREFIX, PIP_CONSTRAINT, UV_CONSTRAINT, its bin/ last on PATH).
`node_args` are the custom-node flags of nodes/service.py (`whitelist_args`).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..model_paths import check_user_yaml
from ..settings import Settings
from ..workspace import Workspace
from .spec import ProcessSpec, Timings

if TYPE_CHECKING:  # aiohttp is imported only after ComfyUI is spawned (start-up latency)
    from ..comfyui.client import ComfyUIClient

log = logging.getLogger(__name__)

COMFYUI_TIMINGS = Timings(
    start_grace=30.0,
    ready_timeout=180.0,  # 12-18 s on 2 CPU cores; first start on a cold network volume can be far slower
    poll_interval=0.25,
    retries=5,
    backoff_base=1.0,
    backoff_cap=30.0,
    stop_sigint=6.0,  # docker stop waits 10 s in total before SIGKILL
    stop_sigterm=2.5,
)


ENV_NAMES = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "HOSTNAME", "TERM", "TZ", "TMPDIR",
        "LANG", "LANGUAGE", "PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONIOENCODING", "PYTHONUTF8",
        "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV", "LD_LIBRARY_PATH",
        "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "HF_HUB_ENABLE_HF_TRANSFER", "TRANSFORMERS_CACHE",
        "TRANSFORMERS_OFFLINE", "TORCH_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
        "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
        "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    }
)  # fmt: skip
ENV_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "PYTORCH_", "TORCH_", "TORCHINDUCTOR_", "TRITON_", "CUBLAS",
                "CUDNN_", "NCCL_", "HIP_", "ROCR_", "HSA_", "XFORMERS_")  # fmt: skip


def comfyui_env(settings: Settings, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables of `environ` (default: ours) that ComfyUI may see: the allow-list above and
    the names in COMFYUI_PASS_ENV (which can never name ACCESS_PASSWORD or API_TOKEN)."""
    source = os.environ if environ is None else environ
    extra = set(settings.comfyui_pass_env)
    return {k: v for k, v in source.items() if k in ENV_NAMES or k in extra or k.startswith(ENV_PREFIXES)}


def user_directory(workspace: Workspace) -> Path:
    return workspace.root / "user"


def database_path(settings: Settings) -> Path:
    """ComfyUI's SQLite file on the container's own disk, keyed by its port (two runtimes never share)."""
    return (
        Path(tempfile.gettempdir())
        / "comfyui-docker"
        / f"comfyui-{settings.comfyui_internal_port}"
        / "comfyui.db"
    )


def venv_dir(settings: Settings) -> Path:
    """The virtual environment of COMFYUI_PYTHON (`<venv>/bin/python`)."""
    return settings.comfyui_python.parent.parent


def manager_installed(settings: Settings) -> bool:
    """ComfyUI-Manager's pip package (ComfyUI 0.33's `manager_requirements.txt`) is in ComfyUI's venv.

    A look at the venv's folders, not an import: this runs on the start path.
    """
    return any(venv_dir(settings).glob("lib/python3*/site-packages/comfyui_manager/__init__.py"))


def constraints_file(settings: Settings) -> Path | None:
    """The image's pip/uv constraints (torch, CUDA libraries, OpenCV), beside ComfyUI's venv."""
    path = venv_dir(settings).parent / "constraints.txt"
    return path if path.is_file() else None


def comfyui_environment(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """`base` (the runtime's environment) with ComfyUI's venv first on PATH and the constraints applied."""
    env = dict(base)
    venv_bin = str(settings.comfyui_python.parent)
    rest = [p for p in env.get("PATH", os.defpath).split(os.pathsep) if p and p != venv_bin]
    env["PATH"] = os.pathsep.join([venv_bin, *rest])
    env["VIRTUAL_ENV"] = str(venv_dir(settings))
    constraints = constraints_file(settings)
    if constraints is not None:
        env["PIP_CONSTRAINT"] = str(constraints)
        env["UV_CONSTRAINT"] = str(constraints)
    return env


def comfyui_args(
    settings: Settings,
    workspace: Workspace,
    *,
    cpu: bool = False,
    warnings: list[str] | None = None,
    node_args: Sequence[str] = (),
) -> list[str]:
    """ComfyUI's arguments after `main.py` (see the module docstring)."""
    args = ["--listen", "127.0.0.1", "--port", str(settings.comfyui_internal_port)]
    args += ["--output-directory", str(workspace.output), "--input-directory", str(workspace.uploads)]
    args += ["--user-directory", str(user_directory(workspace))]
    args += ["--extra-model-paths-config", str(workspace.generated_yaml)]
    args += ["--database-url", f"sqlite:///{database_path(settings)}"]
    if manager_installed(settings):
        args.append("--enable-manager")
    usable, problems = check_user_yaml(workspace.user_yaml)
    if usable:
        args += ["--extra-model-paths-config", str(workspace.user_yaml)]
    elif workspace.user_yaml.is_file():
        why = "; ".join(str(p) for p in problems if p.fatal) or "unreadable"
        msg = f"{workspace.user_yaml} is not passed to ComfyUI: it would crash it ({why})"
        log.warning(msg)
        if warnings is not None:
            warnings.append(msg)
    args += list(node_args)
    if cpu:
        args.append("--cpu")
    args += list(settings.comfyui_extra_args)
    return args


def comfyui_spec(
    settings: Settings,
    workspace: Workspace,
    client: ComfyUIClient | Callable[[], ComfyUIClient | None],
    *,
    cpu: bool = False,
    timings: Timings = COMFYUI_TIMINGS,
    warnings: list[str] | None = None,
    extend_env: Callable[[Mapping[str, str]], dict[str, str]] | None = None,
    node_args: Sequence[str] = (),
) -> ProcessSpec:
    """The supervised ComfyUI: its own Python, run from COMFYUI_ROOT, ready when /system_stats is ours.

    `client` may be a getter: the runtime creates its HTTP client after the spawn.
    """
    if settings.comfyui_root is None:
        raise ValueError("ComfyUI is not installed (COMFYUI_ROOT unset)")
    user_directory(workspace).mkdir(parents=True, exist_ok=True)
    database_path(settings).parent.mkdir(parents=True, exist_ok=True)
    argv = [
        str(settings.comfyui_python),
        "main.py",
        *comfyui_args(settings, workspace, cpu=cpu, warnings=warnings, node_args=node_args),
    ]
    output = workspace.output
    env = comfyui_environment(settings, comfyui_env(settings))

    async def probe() -> bool:
        current = client() if callable(client) else client
        return current is not None and await current.is_ours(output)

    return ProcessSpec(
        name="comfyui",
        argv=argv,
        cwd=settings.comfyui_root,
        env=extend_env(env) if extend_env is not None else env,
        identity="main.py",
        probe=probe,
        timings=timings,
        log_name="comfyui.log",
    )


def not_installed_detail(settings: Settings) -> str:
    if settings.comfyui_root is None:
        return (
            "no ComfyUI found: set COMFYUI_ROOT to a ComfyUI checkout (the folder with main.py) "
            "and COMFYUI_PYTHON to its Python (the image has both)"
        )
    return f"no main.py in COMFYUI_ROOT={settings.comfyui_root}: point it at a ComfyUI checkout"
