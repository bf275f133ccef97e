"""What of the catalog is on the volume: a file present, a preset installed, partial or not, and a
preset as the dashboard and the CLI list it.

A file counts as present when the journal verified it and it has not changed since (installer.py's
`file_is_present`), or, for a file the journal never saw (copied by hand), when it exists with the
exact size the catalog gives. Before the service starts (no journal yet) the file alone decides.
A preset is installed when every file of its recorded variant is present (of any variant when no
install is recorded), partial when any of its files or their `.part` exists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..catalog import FileSpec, Preset
from ..workspace import Workspace
from .http import token_env_for
from .installer import file_is_present
from .journal import Journal


class Presence:
    def __init__(self, ws: Workspace, journal: Callable[[], Journal | None]) -> None:
        self.ws = ws
        self._journal = journal  # the service's, once it has started

    def file_present(self, spec: FileSpec) -> bool:
        dest = self.ws.models / spec.path
        journal = self._journal()
        if journal is None:  # not started: judge by the file alone
            return dest.is_file() and (not spec.size_exact or dest.stat().st_size == spec.size)
        if file_is_present(self.ws, journal, spec):
            return True
        if not dest.is_file() or journal.file(spec.path) is not None:
            return False  # missing, or changed since it was verified
        return not spec.size_exact or dest.stat().st_size == spec.size

    def _record(self, preset: Preset) -> dict[str, Any] | None:
        journal = self._journal()
        return journal.installs().get(preset.id) if journal else None

    def installed_variant(self, preset: Preset) -> str | None:
        record = self._record(preset)
        if record:
            return str(record["variant"]) if record["variant"] is not None else None
        return preset.default_variant

    def state(self, preset: Preset) -> str:
        """installed | partial | not_installed"""
        record = self._record(preset)
        candidates = [record["variant"]] if record else [preset.default_variant, *preset.variants]
        for variant in dict.fromkeys(candidates):
            files = preset.files_for(variant, include_optional=False)
            if files and all(self.file_present(f) for f in files):
                return "installed"
        for f in preset.all_files():
            dest = self.ws.models / f.path
            if dest.exists() or dest.with_name(dest.name + ".part").exists():
                return "partial"
        return "not_installed"

    def view(self, preset: Preset, active_task: str | None) -> dict[str, Any]:
        """The preset as `GET /api/presets` lists it, with its state and its running task's id."""
        state = self.state(preset)
        record = self._record(preset)
        hosts = sorted({f.host for f in preset.all_files()})
        return {
            "id": preset.id,
            "name": preset.name,
            "category": preset.category,
            "type": preset.type,
            "description": preset.description,
            "tags": list(preset.tags),
            "requirements": {
                "vram_gb": preset.requirements.vram_gb,
                "disk_gb": preset.requirements.disk_gb,
            },
            "gated": preset.gated,
            "licence_url": preset.licence_url,
            "token_env": sorted({token_env_for(h) for h in hosts}) if preset.gated else [],
            "hosts": hosts,
            "default_variant": preset.default_variant,
            "variants": [
                {
                    "name": v.name,
                    "description": v.description,
                    "size": preset.total_size(v.name),
                    "files": [f.to_dict() for f in preset.files_for(v.name)],
                }
                for v in preset.variants.values()
            ],
            "files": [f.to_dict() for f in preset.files_for()],
            "size": preset.total_size(),
            "installed": state,
            "installed_variant": record["variant"] if record else None,
            "active_task": active_task,
            "source": preset.source,
        }
