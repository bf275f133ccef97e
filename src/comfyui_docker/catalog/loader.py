"""Load presets.yaml files into a Catalog, reporting every problem with file, line and field.

A broken entry is skipped and listed in `Catalog.problems`; the rest still loads. A file that
cannot be read or parsed at all is one problem, never an exception: a broken user catalog must
never stop the start. Line numbers come from `yaml.compose` node marks.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from ..model_paths import EXTRA_FOLDERS, MODEL_FOLDERS, suggest_folder
from .schema import (
    PRESET_ID_RE,
    PRESET_TYPES,
    SHA256_RE,
    VARIANT_RE,
    FileSpec,
    Preset,
    Requirements,
    Variant,
    parse_size,
)

PRESET_KEYS = {
    "name",
    "category",
    "type",
    "description",
    "tags",
    "requirements",
    "files",
    "variants",
    "default_variant",
    "gated",
    "licence_url",
    "license_url",
}
FILE_KEYS = {"path", "url", "size", "sha256", "optional"}
ALLOWED_FOLDERS = frozenset(MODEL_FOLDERS) | frozenset(EXTRA_FOLDERS)


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    field: str
    message: str
    preset_id: str | None = None
    level: str = "error"  # "error": entry skipped; "warning": loaded anyway

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return f"{where} {self.field}: {self.message}" if self.field else f"{where} {self.message}"


@dataclass
class Catalog:
    presets: dict[str, Preset] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def close_matches(self, preset_id: str, n: int = 3) -> list[str]:
        key = preset_id.strip().upper()
        return difflib.get_close_matches(key, list(self.presets), n=n, cutoff=0.5)


class _EntryError(Exception):
    def __init__(self, node: yaml.Node, fld: str, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.field = fld
        self.message = message


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _scalar(node: yaml.Node) -> Any:
    """The Python value of a scalar node (int, str, bool, None...) as the safe loader sees it."""
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _mapping(node: yaml.Node, fld: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise _EntryError(node, fld, "must be a mapping (key: value lines)")
    out = []
    for knode, vnode in node.value:
        key = _scalar(knode)
        out.append((str(key), knode, vnode))
    return out


def _str(node: yaml.Node, fld: str, *, required: bool = True) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise _EntryError(node, fld, "must be text")
    value = _scalar(node)
    if value is None:
        if required:
            raise _EntryError(node, fld, "is empty")
        return ""
    return str(value).strip()


def _number(node: yaml.Node, fld: str) -> float | None:
    value = _scalar(node) if isinstance(node, yaml.ScalarNode) else object()
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise _EntryError(node, fld, f"{value!r} is not a number of GB")
    return float(value)


def _bool(node: yaml.Node, fld: str) -> bool:
    value = _scalar(node) if isinstance(node, yaml.ScalarNode) else None
    if not isinstance(value, bool):
        raise _EntryError(node, fld, f"{value!r} is not true or false")
    return value


def check_url(url: str) -> str | None:
    """Why `url` cannot be downloaded, or None when it looks fine."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) URL"
    if "/blob/" in parts.path:
        fixed = url.replace("/blob/", "/resolve/", 1)
        return f"'/blob/' URLs return an HTML page, not the file; use {fixed}"
    return None


def check_path(path: str) -> str | None:
    """Why `path` is not '<canonical folder>/<file name>' inside the models tree, or None."""
    if not path:
        return "is empty"
    if path.startswith("/") or "\\" in path or ":" in path.split("/", 1)[0]:
        return f"{path!r} must be relative to models/, like 'loras/name.safetensors'"
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return f"{path!r} leaves the models tree or has an empty part"
    if len(parts) < 2:
        return f"{path!r} needs a folder: '<folder>/{path}' (for example 'checkpoints/{path}')"
    folder = parts[0]
    if folder not in ALLOWED_FOLDERS:
        hint = suggest_folder(folder)
        msg = f"{folder!r} is not a ComfyUI model folder"
        return f"{msg}; did you mean {hint!r}?" if hint else msg
    if parts[-1].startswith("."):
        return f"{path!r}: a hidden file name is not allowed"
    return None


def _file(node: yaml.Node, fld: str, fname: str, problems: list[Problem], pid: str) -> FileSpec:
    entries = _mapping(node, fld)
    values: dict[str, yaml.Node] = {}
    for key, knode, vnode in entries:
        if key not in FILE_KEYS:
            problems.append(
                Problem(fname, _line(knode), f"{fld}.{key}", "unknown field (ignored)", pid, "warning")
            )
        values[key] = vnode
    for key in ("path", "url"):
        if key not in values:
            raise _EntryError(node, f"{fld}.{key}", "is missing")
    path = _str(values["path"], f"{fld}.path").strip()
    why = check_path(path)
    if why:
        raise _EntryError(values["path"], f"{fld}.path", why)
    url = _str(values["url"], f"{fld}.url")
    why = check_url(url)
    if why:
        raise _EntryError(values["url"], f"{fld}.url", why)
    size: int | None = None
    exact = False
    if "size" in values and _scalar(values["size"]) is not None:
        try:
            size, exact = parse_size(_scalar(values["size"]))
        except ValueError as exc:
            raise _EntryError(values["size"], f"{fld}.size", str(exc)) from None
    sha: str | None = None
    if "sha256" in values:
        raw = _str(values["sha256"], f"{fld}.sha256", required=False).lower()
        if raw:
            if not SHA256_RE.match(raw):
                raise _EntryError(values["sha256"], f"{fld}.sha256", "must be 64 hex digits (or empty)")
            sha = raw
    optional = _bool(values["optional"], f"{fld}.optional") if "optional" in values else False
    return FileSpec(path=path, url=url, size=size, size_exact=exact, sha256=sha, optional=optional)


def _files(node: yaml.Node, fld: str, fname: str, problems: list[Problem], pid: str) -> tuple[FileSpec, ...]:
    if not isinstance(node, yaml.SequenceNode):
        raise _EntryError(node, fld, "must be a list of files")
    out = [_file(item, f"{fld}[{i}]", fname, problems, pid) for i, item in enumerate(node.value)]
    seen: dict[str, int] = {}
    for i, spec in enumerate(out):
        if spec.path in seen:
            raise _EntryError(node.value[i], f"{fld}[{i}].path", f"{spec.path!r} is listed twice")
        seen[spec.path] = i
    return tuple(out)


def _preset(pid: str, node: yaml.Node, fname: str, problems: list[Problem]) -> Preset:
    values: dict[str, yaml.Node] = {}
    for key, knode, vnode in _mapping(node, ""):
        if key not in PRESET_KEYS:
            close = difflib.get_close_matches(key, sorted(PRESET_KEYS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else " (ignored)"
            problems.append(Problem(fname, _line(knode), key, f"unknown field{hint}", pid, "warning"))
        values[key] = vnode
    for key in ("name", "type"):
        if key not in values:
            raise _EntryError(node, key, "is missing")
    ptype = _str(values["type"], "type").lower()
    if ptype not in PRESET_TYPES:
        raise _EntryError(values["type"], "type", f"{ptype!r} must be one of {', '.join(PRESET_TYPES)}")
    tags: tuple[str, ...] = ()
    if "tags" in values:
        tnode = values["tags"]
        if not isinstance(tnode, yaml.SequenceNode):
            raise _EntryError(tnode, "tags", "must be a list of words")
        tags = tuple(_str(t, f"tags[{i}]") for i, t in enumerate(tnode.value))
    req = Requirements()
    if "requirements" in values:
        rvals = {k: v for k, _, v in _mapping(values["requirements"], "requirements")}
        for key in rvals:
            if key not in ("vram_gb", "disk_gb"):
                raise _EntryError(rvals[key], f"requirements.{key}", "unknown; use vram_gb or disk_gb")
        req = Requirements(
            vram_gb=_number(rvals["vram_gb"], "requirements.vram_gb") if "vram_gb" in rvals else None,
            disk_gb=_number(rvals["disk_gb"], "requirements.disk_gb") if "disk_gb" in rvals else None,
        )
    files = _files(values["files"], "files", fname, problems, pid) if "files" in values else ()
    variants: dict[str, Variant] = {}
    if "variants" in values:
        for vname, vknode, vnode in _mapping(values["variants"], "variants"):
            if not VARIANT_RE.match(vname):
                raise _EntryError(vknode, f"variants.{vname}", "names are lower case: fp16, fp8, gguf_q4")
            vvals = {k: v for k, _, v in _mapping(vnode, f"variants.{vname}")}
            vfiles = (
                _files(vvals["files"], f"variants.{vname}.files", fname, problems, pid)
                if "files" in vvals
                else ()
            )
            clash = {f.path for f in files} & {f.path for f in vfiles}
            if clash:
                raise _EntryError(
                    vnode, f"variants.{vname}.files", f"{sorted(clash)[0]!r} is also a shared file"
                )
            desc = _str(vvals["description"], "description", required=False) if "description" in vvals else ""
            variants[vname] = Variant(name=vname, description=desc, files=vfiles)
    default_variant: str | None = None
    if "default_variant" in values:
        default_variant = _str(values["default_variant"], "default_variant")
        if default_variant not in variants:
            raise _EntryError(
                values["default_variant"],
                "default_variant",
                f"{default_variant!r} is not one of the variants ({', '.join(variants) or 'none'})",
            )
    elif variants:
        default_variant = next(iter(variants))
    if not files and not any(v.files for v in variants.values()):
        raise _EntryError(node, "files", "the preset has no files")
    gated = False
    licence: str | None = None
    if "gated" in values:
        gnode = values["gated"]
        gval = _scalar(gnode) if isinstance(gnode, yaml.ScalarNode) else None
        if isinstance(gval, str):
            gated, licence = True, gval.strip()
        else:
            gated = _bool(gnode, "gated")
    for key in ("licence_url", "license_url"):
        if key in values:
            licence = _str(values[key], key)
    if licence is not None and check_url(licence):
        raise _EntryError(
            values.get("licence_url", values.get("gated", node)), "licence_url", "must be an https URL"
        )

    def text(key: str) -> str:
        return _str(values[key], key, required=False) if key in values else ""

    return Preset(
        id=pid,
        name=_str(values["name"], "name"),
        type=ptype,
        category=text("category"),
        description=text("description"),
        tags=tags,
        requirements=req,
        files=files,
        variants=variants,
        default_variant=default_variant,
        gated=gated,
        licence_url=licence,
        source=f"{fname}:{_line(node)}",
    )


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
            Problem(fname, _line(root), "", "the file must be a mapping with a 'presets:' key")
        )
        return cat
    top = {_scalar(k): (k, v) for k, v in root.value}
    if "presets" not in top:
        cat.problems.append(
            Problem(fname, _line(root), "presets", "is missing (top level 'presets:' mapping)")
        )
        return cat
    pnode = top["presets"][1]
    if isinstance(pnode, yaml.ScalarNode) and _scalar(pnode) is None:
        return cat
    if not isinstance(pnode, yaml.MappingNode):
        cat.problems.append(Problem(fname, _line(pnode), "presets", "must map preset ids to entries"))
        return cat
    first_line: dict[str, int] = {}
    for knode, vnode in pnode.value:
        pid = str(_scalar(knode))
        if not PRESET_ID_RE.match(pid):
            cat.problems.append(
                Problem(
                    fname, _line(knode), pid, "a preset id is upper case: letters, digits, _ (WAN_22_5B)", pid
                )
            )
            continue
        if pid in first_line:
            cat.problems.append(
                Problem(
                    fname, _line(knode), pid, f"duplicate id (first defined at line {first_line[pid]})", pid
                )
            )
            continue
        first_line[pid] = _line(knode)
        try:
            cat.presets[pid] = _preset(pid, vnode, fname, cat.problems)
        except _EntryError as err:
            cat.problems.append(
                Problem(fname, _line(err.node), err.field, f"{err.message} (preset {pid} skipped)", pid)
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
