"""Custom nodes in the fake ComfyUI, loaded as ComfyUI 0.33 loads them (nodes.py,
`init_external_custom_nodes` / `load_custom_node`), and listed in /object_info. They are not run.

For each folder of the `custom_nodes` type, in order: every entry except `__pycache__`, files
that are not `.py` and names ending in `.disabled`; with `--disable-all-custom-nodes` only the
`--whitelist-custom-nodes` names. Each is imported from its path (`__init__.py` for a folder);
a failure logs the traceback and `Cannot import <path> module for custom nodes: <error>`. After
all of them, the same "Import times for custom nodes:" block, `(IMPORT FAILED)` marking failures.
V1 nodes (NODE_CLASS_MAPPINGS) become /object_info entries; a class name the fake already has
is not replaced (ComfyUI's built-in classes win the same way).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import time
import traceback
from typing import Any

log = logging.getLogger("fake_comfy")
INFO = "\x1b[32m[INFO]\x1b[0m "
WARNING = "\x1b[1m\x1b[33m[WARNING]\x1b[0m "


def _entry(name: str, cls: Any, module: str) -> dict[str, Any]:
    inputs = cls.INPUT_TYPES() if hasattr(cls, "INPUT_TYPES") else {}
    outputs = list(getattr(cls, "RETURN_TYPES", ()))
    return {
        "input": inputs,
        "input_order": {k: list(v) for k, v in inputs.items() if isinstance(v, dict)},
        "is_input_list": bool(getattr(cls, "INPUT_IS_LIST", False)),
        "output": outputs,
        "output_is_list": list(getattr(cls, "OUTPUT_IS_LIST", [False] * len(outputs))),
        "output_name": list(getattr(cls, "RETURN_NAMES", outputs)),
        "name": name,
        "display_name": name,
        "description": str(getattr(cls, "DESCRIPTION", "")),
        "python_module": f"custom_nodes.{module}",
        "category": str(getattr(cls, "CATEGORY", "sd")),
        "output_node": bool(getattr(cls, "OUTPUT_NODE", False)),
        "has_intermediate_output": False,
        "search_aliases": [],
    }


def _load(module_path: str, object_info: dict[str, Any], builtin: set[str]) -> bool:
    module_name = os.path.basename(module_path)
    if os.path.isfile(module_path):
        sys_name, init = os.path.splitext(module_path)[0], module_path
        module_name = os.path.splitext(module_name)[0]
    else:
        sys_name, init = module_path.replace(".", "_x_"), os.path.join(module_path, "__init__.py")
    try:
        spec = importlib.util.spec_from_file_location(sys_name, init)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {init}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[sys_name] = module
        spec.loader.exec_module(module)
        mappings = getattr(module, "NODE_CLASS_MAPPINGS", None)
        if mappings is None:
            log.warning(
                "%sSkip %s module for custom nodes due to the lack of NODE_CLASS_MAPPINGS or "
                "comfy_entrypoint (need one).",
                WARNING,
                module_path,
            )
            return False
        for name, cls in mappings.items():
            if name not in builtin:
                object_info[name] = _entry(name, cls, module_name)
        return True
    except Exception as exc:
        log.warning("%s%s", WARNING, traceback.format_exc())
        log.warning("%sCannot import %s module for custom nodes: %s", WARNING, module_path, exc)
        return False


def load_all(
    folders: list[str], object_info: dict[str, Any], *, disable_all: bool, whitelist: list[str]
) -> None:
    builtin = set(object_info)
    times: list[tuple[float, str, bool]] = []
    for folder in folders:
        for name in os.listdir(os.path.realpath(folder)):
            path = os.path.join(folder, name)
            if name == "__pycache__" or (os.path.isfile(path) and not name.endswith(".py")):
                continue
            if path.endswith(".disabled"):
                continue
            if disable_all and name not in whitelist:
                log.info(
                    "%sSkipping %s due to disable_all_custom_nodes and whitelist_custom_nodes", INFO, name
                )
                continue
            started = time.perf_counter()
            ok = _load(path, object_info, builtin)
            times.append((time.perf_counter() - started, path, ok))
    if times:
        log.info("%s\nImport times for custom nodes:", INFO)
        for seconds, path, ok in sorted(times):
            log.info("%s%6.1f seconds%s: %s", INFO, seconds, "" if ok else " (IMPORT FAILED)", path)
        log.info("%s", INFO)
