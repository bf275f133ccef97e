"""A workflow's missing models: what is missing, who provides it, whether its URL may be fetched.

A `MissingModel` is one model file the workflow names that is on neither the volume nor ComfyUI's
own lists, with the presets that provide it (`ModelSources`: the preset service) and, when the
workflow gives a URL, why that URL is refused (a host that is not an allowed model host). Its
`install` says how to get it; an `Installation` is what `install_missing` started.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from ..catalog.schema import FileSpec
from ..model_inputs import ModelRef
from ..services import InstallTask
from .widgets import combo_choices, input_specs


class ModelSources(Protocol):
    """What the preset service offers this module: who provides a file, installs, their end."""

    def providers(self, folder: str, filename: str) -> list[str]: ...

    async def install(self, preset_id: str, variant: str | None = None) -> InstallTask: ...

    async def install_files(self, label: str, files: list[FileSpec]) -> InstallTask: ...

    async def wait(self, task_id: str) -> InstallTask: ...


@dataclass(frozen=True)
class MissingModel:
    ref: ModelRef
    providers: tuple[str, ...] = ()
    refusal: str | None = None  # why the workflow's URL may not be fetched (host not allowed...)

    @property
    def path(self) -> str:
        return f"{self.ref.folder}/{self.ref.name}"

    @property
    def install(self) -> dict[str, Any] | None:
        """How to get it: the first preset that provides it, else the URL the workflow gives,
        with its host and whether that host is an allowed model host."""
        if self.providers:
            return {"kind": "preset", "preset_id": self.providers[0]}
        if self.ref.url:
            host = _host(self.ref.url)
            return {
                "kind": "url",
                "url": self.ref.url,
                "host": host,
                "allowed": self.refusal is None,
                "why": self.refusal,
            }
        return None

    @property
    def refused(self) -> bool:
        return not self.providers and bool(self.ref.url) and self.refusal is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.ref.as_dict(),
            "present": False,
            "providers": list(self.providers),
            "install": self.install,
        }


@dataclass
class Installation:
    tasks: list[InstallTask] = field(default_factory=list)
    unresolved: list[MissingModel] = field(default_factory=list)
    refused: list[MissingModel] = field(default_factory=list)  # URLs on hosts that are not allowed


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def listed_by_comfyui(ref: ModelRef, prompt: Mapping[str, Any], nodes: Mapping[str, Any]) -> bool:
    """Whether ComfyUI offers the file for that input (another models folder, a user yaml)."""
    node = prompt.get(str(ref.node_id))
    definition = nodes.get(str(node.get("class_type"))) if isinstance(node, Mapping) else None
    if not isinstance(definition, Mapping) or ref.input is None:
        return False
    return any(
        ref.name in (str(c) for c in combo_choices(spec) or ())
        for name, spec in input_specs(definition)
        if name == ref.input
    )
