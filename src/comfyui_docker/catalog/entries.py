"""One preset entry of a presets.yaml, read from its YAML nodes with file:line problems.

`preset_entry` turns an entry into a `Preset`; a field that makes the entry unusable raises
`EntryError` (the loader skips the entry and lists the problem), a doubtful one is a warning in
the problems list. `check_url` and `check_path` are the rules for a file's URL and target path,
used for workflow-named files too.
"""

from __future__ import annotations

import difflib
from typing import Any
from urllib.parse import urlsplit

import yaml

from ..model_paths import EXTRA_FOLDERS, MODEL_FOLDERS, suggest_folder
from .schema import (
    PRESET_TYPES,
    SHA256_RE,
    VARIANT_RE,
    FileSpec,
    Preset,
    Problem,
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


class EntryError(Exception):
    def __init__(self, node: yaml.Node, fld: str, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.field = fld
        self.message = message


def line_of(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def scalar(node: yaml.Node) -> Any:
    """The Python value of a scalar node (int, str, bool, None...) as the safe loader sees it."""
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _mapping(node: yaml.Node, fld: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise EntryError(node, fld, "must be a mapping (key: value lines)")
    out = []
    for knode, vnode in node.value:
        key = scalar(knode)
        out.append((str(key), knode, vnode))
    return out


def _str(node: yaml.Node, fld: str, *, required: bool = True) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise EntryError(node, fld, "must be text")
    value = scalar(node)
    if value is None:
        if required:
            raise EntryError(node, fld, "is empty")
        return ""
    return str(value).strip()


def _number(node: yaml.Node, fld: str) -> float | None:
    value = scalar(node) if isinstance(node, yaml.ScalarNode) else object()
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise EntryError(node, fld, f"{value!r} is not a number of GB")
    return float(value)


def _bool(node: yaml.Node, fld: str) -> bool:
    value = scalar(node) if isinstance(node, yaml.ScalarNode) else None
    if not isinstance(value, bool):
        raise EntryError(node, fld, f"{value!r} is not true or false")
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
                Problem(fname, line_of(knode), f"{fld}.{key}", "unknown field (ignored)", pid, "warning")
            )
        values[key] = vnode
    for key in ("path", "url"):
        if key not in values:
            raise EntryError(node, f"{fld}.{key}", "is missing")
    path = _str(values["path"], f"{fld}.path").strip()
    why = check_path(path)
    if why:
        raise EntryError(values["path"], f"{fld}.path", why)
    url = _str(values["url"], f"{fld}.url")
    why = check_url(url)
    if why:
        raise EntryError(values["url"], f"{fld}.url", why)
    size: int | None = None
    exact = False
    if "size" in values and scalar(values["size"]) is not None:
        try:
            size, exact = parse_size(scalar(values["size"]))
        except ValueError as exc:
            raise EntryError(values["size"], f"{fld}.size", str(exc)) from None
    sha: str | None = None
    if "sha256" in values:
        raw = _str(values["sha256"], f"{fld}.sha256", required=False).lower()
        if raw:
            if not SHA256_RE.match(raw):
                raise EntryError(values["sha256"], f"{fld}.sha256", "must be 64 hex digits (or empty)")
            sha = raw
    optional = _bool(values["optional"], f"{fld}.optional") if "optional" in values else False
    return FileSpec(path=path, url=url, size=size, size_exact=exact, sha256=sha, optional=optional)


def _files(node: yaml.Node, fld: str, fname: str, problems: list[Problem], pid: str) -> tuple[FileSpec, ...]:
    if not isinstance(node, yaml.SequenceNode):
        raise EntryError(node, fld, "must be a list of files")
    out = [_file(item, f"{fld}[{i}]", fname, problems, pid) for i, item in enumerate(node.value)]
    seen: dict[str, int] = {}
    for i, spec in enumerate(out):
        if spec.path in seen:
            raise EntryError(node.value[i], f"{fld}[{i}].path", f"{spec.path!r} is listed twice")
        seen[spec.path] = i
    return tuple(out)


def preset_entry(pid: str, node: yaml.Node, fname: str, problems: list[Problem]) -> Preset:
    values: dict[str, yaml.Node] = {}
    for key, knode, vnode in _mapping(node, ""):
        if key not in PRESET_KEYS:
            close = difflib.get_close_matches(key, sorted(PRESET_KEYS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else " (ignored)"
            problems.append(Problem(fname, line_of(knode), key, f"unknown field{hint}", pid, "warning"))
        values[key] = vnode
    for key in ("name", "type"):
        if key not in values:
            raise EntryError(node, key, "is missing")
    ptype = _str(values["type"], "type").lower()
    if ptype not in PRESET_TYPES:
        raise EntryError(values["type"], "type", f"{ptype!r} must be one of {', '.join(PRESET_TYPES)}")
    tags: tuple[str, ...] = ()
    if "tags" in values:
        tnode = values["tags"]
        if not isinstance(tnode, yaml.SequenceNode):
            raise EntryError(tnode, "tags", "must be a list of words")
        tags = tuple(_str(t, f"tags[{i}]") for i, t in enumerate(tnode.value))
    req = Requirements()
    if "requirements" in values:
        rvals = {k: v for k, _, v in _mapping(values["requirements"], "requirements")}
        for key in rvals:
            if key not in ("vram_gb", "disk_gb"):
                raise EntryError(rvals[key], f"requirements.{key}", "unknown; use vram_gb or disk_gb")
        req = Requirements(
            vram_gb=_number(rvals["vram_gb"], "requirements.vram_gb") if "vram_gb" in rvals else None,
            disk_gb=_number(rvals["disk_gb"], "requirements.disk_gb") if "disk_gb" in rvals else None,
        )
    files = _files(values["files"], "files", fname, problems, pid) if "files" in values else ()
    variants: dict[str, Variant] = {}
    if "variants" in values:
        for vname, vknode, vnode in _mapping(values["variants"], "variants"):
            if not VARIANT_RE.match(vname):
                raise EntryError(vknode, f"variants.{vname}", "names are lower case: fp16, fp8, gguf_q4")
            vvals = {k: v for k, _, v in _mapping(vnode, f"variants.{vname}")}
            vfiles = (
                _files(vvals["files"], f"variants.{vname}.files", fname, problems, pid)
                if "files" in vvals
                else ()
            )
            clash = {f.path for f in files} & {f.path for f in vfiles}
            if clash:
                raise EntryError(
                    vnode, f"variants.{vname}.files", f"{sorted(clash)[0]!r} is also a shared file"
                )
            desc = _str(vvals["description"], "description", required=False) if "description" in vvals else ""
            variants[vname] = Variant(name=vname, description=desc, files=vfiles)
    default_variant: str | None = None
    if "default_variant" in values:
        default_variant = _str(values["default_variant"], "default_variant")
        if default_variant not in variants:
            raise EntryError(
                values["default_variant"],
                "default_variant",
                f"{default_variant!r} is not one of the variants ({', '.join(variants) or 'none'})",
            )
    elif variants:
        default_variant = next(iter(variants))
    if not files and not any(v.files for v in variants.values()):
        raise EntryError(node, "files", "the preset has no files")
    gated = False
    licence: str | None = None
    if "gated" in values:
        gnode = values["gated"]
        gval = scalar(gnode) if isinstance(gnode, yaml.ScalarNode) else None
        if isinstance(gval, str):
            gated, licence = True, gval.strip()
        else:
            gated = _bool(gnode, "gated")
    for key in ("licence_url", "license_url"):
        if key in values:
            licence = _str(values[key], key)
    if licence is not None and check_url(licence):
        raise EntryError(
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
        source=f"{fname}:{line_of(node)}",
    )
