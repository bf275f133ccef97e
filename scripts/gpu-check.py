#!/usr/bin/env python3
"""Print NVML readings and the GPU preflight verdict as JSON (run it on a GPU machine).

    python scripts/gpu-check.py [--python /path/to/comfyui/venv/bin/python] [--deep]

--python  the interpreter that runs ComfyUI (default: COMFYUI_PYTHON, else the venv beside
          COMFYUI_ROOT, else this Python); its torch is checked, never ours.
--deep    also import torch there and call torch.cuda.is_available() (seconds).
Exit code: 0 ok / no GPU / warning, 1 mismatch or error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from comfyui_docker import gpu
from comfyui_docker.settings import Settings


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--python", type=Path, default=None)
    parser.add_argument("--deep", action="store_true")
    args = parser.parse_args()
    python = args.python or Settings.from_env().comfyui_python
    out = {
        "python": str(python),
        "nvml": gpu.read_nvml(),
        "preflight": asyncio.run(gpu.preflight(python)).as_dict(),
    }
    if args.deep:
        out["deep"] = asyncio.run(gpu.deep_preflight(python)).as_dict()
    print(json.dumps(out, indent=2))
    verdicts = {out["preflight"]["verdict"], out.get("deep", {}).get("verdict", "ok")}
    return 1 if verdicts & {"mismatch", "error"} else 0


if __name__ == "__main__":
    sys.exit(main())
