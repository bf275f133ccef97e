"""The check's summary: every check with its result and figure, the build's time and size."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Summary:
    variant: str
    tag: str
    log: Path
    build_seconds: float | None = None
    size_bytes: int | None = None
    missing_files: list[str] = field(default_factory=list)
    torch_layers: dict[str, str | None] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok

    def fail(self, name: str, detail: str) -> None:
        self.add(name, False, detail)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def render(self) -> str:
        lines = ["", f"== image-check {self.variant}: {self.tag}"]
        if self.build_seconds is not None:
            lines.append(f"{'build (buildah bud)':<28} {self.build_seconds:.1f} s")
        if self.size_bytes is not None:
            lines.append(f"{'image size':<28} {self.size_bytes / 1e9:.2f} GB")
        for name, value in self.figures.items():
            lines.append(f"{name:<28} {value}")
        if self.torch_layers:
            ids = {v for v in self.torch_layers.values() if v}
            shared = (
                "one shared layer" if len(ids) == 1 and len(self.torch_layers) > 1 else f"{len(ids)} distinct"
            )
            per = ", ".join(f"{k}={(v or '?')[7:19]}" for k, v in self.torch_layers.items())
            lines.append(f"{'torch layer':<28} {per} ({shared})")
        if self.missing_files:
            absent = ", ".join(self.missing_files)
            lines.append(
                f"{'not in the image':<28} {len(self.missing_files)} absent from the checkouts: {absent}"
            )
        for c in self.checks:
            lines.append(f"{'PASS' if c.ok else 'FAIL'}  {c.name}" + (f": {c.detail}" if c.detail else ""))
        lines.append(f"result: {'PASS' if self.ok else 'FAIL'}  (log: {self.log})")
        return "\n".join(lines)
