"""Load presets.yaml files into a Catalog, reporting every problem with file, line and field.

A broken entry is skipped and listed in `Catalog.problems` (entries.py reads each one); the rest
still loads. A file that cannot be read or parsed at all is one problem, never an exception: a
broken user catalog must never stop the start. Line numbers come from `yaml.compose` node marks.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from .entries import EntryError, line_of, preset_entry, scalar
from .schema import PRESET_ID_RE, Catalog, Problem


def _compose(text: str) -> yaml.Node | None:
    """The node tree, by libyaml when PyYAML has it (~20x faster: this runs on the start path).
    A text libyaml rejects is parsed again by the pure-Python parser, whose messages we report."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return yaml.compose(text, Loader=fast)
        except yaml.YAMLError:
            pass
    return yaml.compose(text, Loader=yaml.SafeLoader)


def parse_text(text: str, fname: str = "presets.yaml") -> Catalog:
    """Parse one catalog text. Never raises for bad content: problems are collected."""
    cat = Catalog(sources=[fname])
    try:
        root = _compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = int(mark.line) + 1 if mark is not None else 1
        reason = getattr(exc, "problem", None) or str(exc)
        cat.problems.append(Problem(fname, line, "", f"not valid YAML: {reason}"))
        return cat
    if root is None:
        return cat
    if not isinstance(root, yaml.MappingNode):
        cat.problems.append(
            Problem(fname, line_of(root), "", "the file must be a mapping with a 'presets:' key")
        )
        return cat
    top = {scalar(k): (k, v) for k, v in root.value}
    if "presets" not in top:
        cat.problems.append(
            Problem(fname, line_of(root), "presets", "is missing (top level 'presets:' mapping)")
        )
        return cat
    pnode = top["presets"][1]
    if isinstance(pnode, yaml.ScalarNode) and scalar(pnode) is None:
        return cat
    if not isinstance(pnode, yaml.MappingNode):
        cat.problems.append(Problem(fname, line_of(pnode), "presets", "must map preset ids to entries"))
        return cat
    first_line: dict[str, int] = {}
    for knode, vnode in pnode.value:
        pid = str(scalar(knode))
        if not PRESET_ID_RE.match(pid):
            cat.problems.append(
                Problem(
                    fname,
                    line_of(knode),
                    pid,
                    "a preset id is upper case: letters, digits, _ (WAN_22_5B)",
                    pid,
                )
            )
            continue
        if pid in first_line:
            cat.problems.append(
                Problem(
                    fname, line_of(knode), pid, f"duplicate id (first defined at line {first_line[pid]})", pid
                )
            )
            continue
        first_line[pid] = line_of(knode)
        try:
            cat.presets[pid] = preset_entry(pid, vnode, fname, cat.problems)
        except EntryError as err:
            cat.problems.append(
                Problem(fname, line_of(err.node), err.field, f"{err.message} (preset {pid} skipped)", pid)
            )
    return cat


def load_file(path: Path, display: str | None = None) -> Catalog:
    name = display or path.name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Catalog()
    except (OSError, UnicodeDecodeError) as exc:
        cat = Catalog(sources=[name])
        cat.problems.append(Problem(name, 1, "", f"cannot be read: {exc}"))
        return cat
    return parse_text(text, name)


def shipped_text() -> str:
    return resources.files(__package__).joinpath("presets.yaml").read_text(encoding="utf-8")


def load_catalog(user_path: Path | None = None, *, shipped: str | None = None) -> Catalog:
    """The shipped catalog with the user's file merged over it (user entries replace or add)."""
    base = parse_text(shipped if shipped is not None else shipped_text(), "presets.yaml (shipped)")
    if user_path is None:
        return base
    user = load_file(user_path, str(user_path))
    merged = Catalog(presets=dict(base.presets), problems=base.problems + user.problems)
    merged.sources = base.sources + user.sources
    merged.presets.update(user.presets)
    return merged
