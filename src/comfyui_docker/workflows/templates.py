"""ComfyUI's official workflow templates (PyPI `comfyui-workflow-templates-json`).

What the package ships (0.1.50): `templates/<name>.json` (one UI-format workflow each, 506 of
them), `templates/index.json` (categories -> templates with title, description, tags, model
names, date, total size, media type, the template's input/output nodes, tutorial URL) and the
same index translated (`index.<lang>.json`), plus `index.schema.json`, `index_logo.json` and
`fuse_options.json`. It ships no thumbnail images: `thumbnail` entries are names only.

Many templates name their models in their nodes' `properties.models` (name, download URL,
folder). `TemplateLibrary.preset(name)` turns those into an installable preset (one file per
model, `path = "<folder>/<name>"`); `problems(name)` reports a folder that is not a ComfyUI
folder or a URL that is not a direct `/resolve/` download.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from ..catalog.schema import FileSpec, Preset
from ..errors import NotFound
from ..model_paths import MODEL_FOLDERS, canonical_folder
from .refs import declared_models

PACKAGE = "comfyui_workflow_templates_json"
NOT_TEMPLATES = frozenset({"fuse_options", "index_logo", "index.schema"})


@dataclass(frozen=True)
class TemplateInfo:
    name: str
    title: str
    description: str = ""
    category: str = ""  # the index's section title ("Video", "Image", ...)
    media_type: str = ""  # what the section produces ("video", "image", "audio", "3d")
    tags: tuple[str, ...] = ()
    models: tuple[str, ...] = ()  # model family names shown by the index ("Wan 2.2")
    date: str = ""
    size: int | None = None  # total bytes of the models, as the index states it
    thumbnails: tuple[str, ...] = ()  # names only: the package ships no images
    inputs: tuple[dict[str, Any], ...] = ()  # the index's io.inputs (node id, type, sample file)
    tutorial_url: str | None = None
    open_source: bool | None = None
    is_app: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "category": self.category,
            "media_type": self.media_type,
            "tags": list(self.tags),
            "models": list(self.models),
            "date": self.date,
            "size": self.size,
            "thumbnails": list(self.thumbnails),
            "inputs": list(self.inputs),
            "tutorial_url": self.tutorial_url,
            "open_source": self.open_source,
            "is_app": self.is_app,
        }

    def matches(self, query: str = "", tag: str | None = None) -> bool:
        if tag and tag.lower() not in {t.lower() for t in self.tags}:
            return False
        if not query:
            return True
        hay = " ".join((self.name, self.title, self.description, *self.tags, *self.models)).lower()
        return all(word in hay for word in query.lower().split())


def _info(entry: Mapping[str, Any], section: Mapping[str, Any]) -> TemplateInfo:
    raw_io = entry.get("io")
    io: Mapping[str, Any] = raw_io if isinstance(raw_io, Mapping) else {}
    thumbs = entry.get("thumbnail")
    size = entry.get("size")
    return TemplateInfo(
        name=str(entry["name"]),
        title=str(entry.get("title") or entry["name"]),
        description=str(entry.get("description") or ""),
        category=str(section.get("title") or ""),
        media_type=str(section.get("type") or entry.get("mediaType") or ""),
        tags=tuple(str(t) for t in entry.get("tags") or []),
        models=tuple(str(m) for m in entry.get("models") or []),
        date=str(entry.get("date") or ""),
        size=size if isinstance(size, int) else None,
        thumbnails=tuple(str(t) for t in thumbs) if isinstance(thumbs, list) else (),
        inputs=tuple(i for i in io.get("inputs") or [] if isinstance(i, dict)),
        tutorial_url=entry.get("tutorialUrl") if isinstance(entry.get("tutorialUrl"), str) else None,
        open_source=entry.get("openSource") if isinstance(entry.get("openSource"), bool) else None,
        is_app=bool(entry.get("isApp")),
    )


class TemplateLibrary:
    """The installed templates package, read lazily and cached (the index is read once)."""

    def __init__(self, root: Traversable | None = None) -> None:
        self._root = root
        self._infos: dict[str, TemplateInfo] | None = None

    @property
    def root(self) -> Traversable:
        if self._root is None:
            try:
                self._root = resources.files(PACKAGE) / "templates"
            except ModuleNotFoundError:
                raise NotFound(
                    "the official templates are not installed",
                    hint="pip install comfyui-workflow-templates-json",
                ) from None
        return self._root

    def _read_json(self, name: str) -> Any:
        return json.loads((self.root / name).read_text(encoding="utf-8"))

    def infos(self) -> dict[str, TemplateInfo]:
        if self._infos is None:
            infos: dict[str, TemplateInfo] = {}
            try:
                index = self._read_json("index.json")
            except FileNotFoundError:
                index = []
            for section in index if isinstance(index, list) else []:
                for entry in section.get("templates") or []:
                    if isinstance(entry, Mapping) and entry.get("name"):
                        infos.setdefault(str(entry["name"]), _info(entry, section))
            for item in self.root.iterdir():
                stem = item.name.removesuffix(".json")
                if item.name.endswith(".json") and not stem.startswith("index") and stem not in NOT_TEMPLATES:
                    infos.setdefault(stem, TemplateInfo(name=stem, title=stem))
            self._infos = infos
        return self._infos

    def search(self, query: str = "", tag: str | None = None) -> list[TemplateInfo]:
        """Templates in index order, filtered by words in name/title/description/tags and a tag."""
        return [info for info in self.infos().values() if info.matches(query, tag)]

    def tags(self) -> list[str]:
        return sorted({t for info in self.infos().values() for t in info.tags})

    def get(self, name: str) -> TemplateInfo:
        info = self.infos().get(name)
        if info is None:
            import difflib

            close = difflib.get_close_matches(name, list(self.infos()), n=3)
            raise NotFound(
                f"no template named {name!r}",
                hint=f"did you mean {', '.join(close)}?"
                if close
                else "list them with: comfyui-docker templates",
            )
        return info

    def load(self, name: str) -> dict[str, Any]:
        """The template's UI-format workflow."""
        self.get(name)
        data = self._read_json(f"{name}.json")
        if not isinstance(data, dict):
            raise NotFound(f"template {name!r} is not a workflow")
        return data

    def files(self, name: str) -> list[dict[str, Any]]:
        """Model files the template declares: `{path: "<folder>/<name>", url, folder, name}`."""
        out: dict[str, dict[str, Any]] = {}
        for ref in declared_models(self.load(name), active_only=False):
            path = f"{ref.folder}/{ref.name}"
            if path not in out or (ref.url and not out[path]["url"]):
                out[path] = {"path": path, "url": ref.url, "folder": ref.folder, "name": ref.name}
        return list(out.values())

    def problems(self, name: str) -> list[str]:
        """Declared models whose folder is not canonical or whose URL is not a direct download."""
        found = []
        for node_props in _raw_model_entries(self.load(name)):
            directory = str(node_props.get("directory") or "")
            url = node_props.get("url")
            label = f"{name}: {directory}/{node_props.get('name')}"
            if directory not in MODEL_FOLDERS:
                canon = canonical_folder(directory)
                found.append(
                    f"{label}: folder {directory!r} is a legacy alias of {canon!r}"
                    if canon
                    else f"{label}: folder {directory!r} is not a ComfyUI model folder"
                )
            if not isinstance(url, str) or "/resolve/" not in url:
                found.append(f"{label}: URL {url!r} is not a /resolve/ download URL")
        return found

    def preset(self, name: str) -> Preset | None:
        """An installable preset of the template's declared models (None when it names none)."""
        info = self.get(name)
        files = tuple(
            FileSpec(path=f["path"], url=direct_url(f["url"])) for f in self.files(name) if f["url"]
        )
        if not files:
            return None
        return Preset(
            id=f"template:{name}",
            name=info.title,
            type=info.media_type or "template",
            category="Official templates",
            description=info.description,
            tags=info.tags,
            files=files,
            source=f"{PACKAGE}/{name}.json",
        )


@lru_cache(maxsize=1)
def default_library() -> TemplateLibrary:
    """The installed templates, read once per process."""
    return TemplateLibrary()


def direct_url(url: str) -> str:
    """A Hugging Face `/blob/` page URL turned into its `/resolve/` download URL."""
    if "huggingface.co/" in url and "/blob/" in url:
        return url.replace("/blob/", "/resolve/", 1)
    return url


def _raw_model_entries(workflow: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    nodes = list(workflow.get("nodes") or [])
    defs = workflow.get("definitions") or {}
    for sub in defs.get("subgraphs") or [] if isinstance(defs, Mapping) else []:
        nodes.extend(sub.get("nodes") or [])
    out = []
    for node in nodes:
        props = node.get("properties") if isinstance(node, Mapping) else None
        for entry in (props or {}).get("models") or [] if isinstance(props, Mapping) else []:
            if isinstance(entry, Mapping):
                out.append(entry)
    return out
