"""The user's own `extra_model_paths.user.yaml`, checked before ComfyUI meets it.

Some yaml forms crash ComfyUI 0.33 at start (empty file, scalar top level, list or int values,
null inside a section, `custom_nodes` pointing to a missing folder); others are silently ignored
(an unknown key such as `lora:` creates a type no loader reads). `validate_yaml_text` reports both
with their line; `check_user_yaml` says whether the file may be passed to ComfyUI at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from .model_lookup import yaml_folders
from .model_paths import CANONICAL_TYPES, EXTRA_FOLDERS, LEGACY_ALIASES, suggest_folder


@dataclass(frozen=True)
class YamlProblem:
    line: int | None
    key: str
    message: str
    fatal: bool  # True: ComfyUI would crash at start with this file

    def __str__(self) -> str:
        where = f":{self.line}" if self.line else ""
        return f"{where} {self.key}: {self.message}".strip()


def validate_yaml_text(text: str, yaml_dir: Path) -> list[YamlProblem]:
    """Problems in an extra_model_paths file, as ComfyUI 0.33 would meet them."""
    problems: list[YamlProblem] = []
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        return [YamlProblem(line, "(file)", f"not valid YAML: {getattr(exc, 'problem', exc)}", True)]
    if node is None:
        return [YamlProblem(None, "(file)", "the file is empty; ComfyUI crashes on an empty file", True)]
    if not isinstance(node, yaml.MappingNode):
        return [
            YamlProblem(
                node.start_mark.line + 1,
                "(file)",
                "the top level must be a mapping of sections",
                True,
            )
        ]
    for key_node, section in node.value:
        skey = str(key_node.value)
        line = key_node.start_mark.line + 1
        if isinstance(section, yaml.ScalarNode) and section.tag.endswith(":null"):
            continue  # a null section is skipped by ComfyUI
        if not isinstance(section, yaml.MappingNode):
            problems.append(YamlProblem(line, skey, "a section must be a mapping of folder types", True))
            continue
        base_path: str | None = None
        for k_node, v_node in section.value:
            if str(k_node.value) == "base_path" and isinstance(v_node, yaml.ScalarNode):
                base_path = os.path.expandvars(os.path.expanduser(str(v_node.value)))
        for k_node, v_node in section.value:
            key = str(k_node.value)
            kline = k_node.start_mark.line + 1
            if key in ("base_path", "is_default"):
                continue
            if not isinstance(v_node, yaml.ScalarNode):
                problems.append(
                    YamlProblem(
                        kline,
                        f"{skey}.{key}",
                        "must be a string (one folder per line; use a '|' block for several), not a list",
                        True,
                    )
                )
                continue
            if v_node.tag.endswith(":null"):
                problems.append(YamlProblem(kline, f"{skey}.{key}", "has no value; ComfyUI crashes", True))
                continue
            if not v_node.tag.endswith(":str"):
                problems.append(
                    YamlProblem(
                        kline,
                        f"{skey}.{key}",
                        f"{v_node.value!r} must be a quoted string, not a number or boolean",
                        True,
                    )
                )
                continue
            if key in ("input", "output", "temp"):
                problems.append(
                    YamlProblem(
                        kline,
                        f"{skey}.{key}",
                        "ComfyUI ignores input/output here; "
                        "they are set with --input-directory/--output-directory",
                        False,
                    )
                )
                continue
            if key == "custom_nodes":
                for folder in yaml_folders(str(v_node.value), base_path, yaml_dir):
                    if not folder.is_dir():
                        problems.append(
                            YamlProblem(
                                kline,
                                f"{skey}.{key}",
                                f"{folder} does not exist; ComfyUI crashes at start",
                                True,
                            )
                        )
                continue
            if key not in CANONICAL_TYPES and key not in LEGACY_ALIASES and key not in EXTRA_FOLDERS:
                hint = suggest_folder(key)
                msg = f"'{key}' is not a ComfyUI model folder; no loader will read it"
                if hint:
                    msg += f"; did you mean '{hint}'?"
                problems.append(YamlProblem(kline, f"{skey}.{key}", msg, False))
    return problems


def validate_yaml_file(path: Path) -> list[YamlProblem]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return [YamlProblem(None, "(file)", "not UTF-8 text", True)]
    return validate_yaml_text(text, path.parent)


def check_user_yaml(path: Path) -> tuple[bool, list[YamlProblem]]:
    """(usable, problems): usable means it exists and would not crash ComfyUI."""
    if not path.is_file():
        return False, []
    problems = validate_yaml_file(path)
    return not any(p.fatal for p in problems), problems
