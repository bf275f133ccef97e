"""ComfyUI's environment: which of our variables it sees, its venv first, the image's constraints.

It starts from an allow-list of ours (`comfyui_env`): paths, locale, proxies and GPU / library
settings, plus the names in COMFYUI_PASS_ENV. ACCESS_PASSWORD, API_TOKEN, HF_TOKEN, CIVITAI_TOKEN,
PUBLIC_KEY and anything else not listed stay out: every custom node runs in that process and could
read them.

On top of it (`comfyui_environment`), ComfyUI's own venv comes first on PATH (nodes that run `pip`,
`python` or a console script of the venv find ComfyUI's), and, where the image ships one, the
constraints file beside the venv applies to every pip and uv run (PIP_CONSTRAINT, UV_CONSTRAINT):
ComfyUI-Manager cannot replace torch, its CUDA libraries or the image's one OpenCV.

Nothing here imports anything of ComfyUI's: it runs on the start path, before ComfyUI is spawned.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..settings import Settings

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
