"""docs/architecture.md is the map of the runtime: every package under src/comfyui_docker/ has its
paragraph there, and every module at the package's top level is named in the top-level one."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "src" / "comfyui_docker"
DOC = REPO / "docs" / "architecture.md"
HEADING = re.compile(r"^### `([^`]+)`", re.M)
MIN_WORDS = 30  # a paragraph, not a placeholder


def sections(text: str) -> dict[str, str]:
    """Each `### `name`` heading and the text under it, up to the next heading."""
    out: dict[str, str] = {}
    marks = list(HEADING.finditer(text))
    for mark, after in zip(marks, [*marks[1:], None], strict=True):
        end = after.start() if after is not None else len(text)
        body = text[mark.end() : end]
        out[mark.group(1)] = re.split(r"^#{1,3} ", body, maxsplit=1, flags=re.M)[0]
    return out


def packages(root: Path) -> list[str]:
    inits = [p for p in root.rglob("__init__.py") if p.parent != root]
    return sorted(f"{p.parent.relative_to(root).as_posix()}/" for p in inits)


def undocumented(text: str, names: list[str]) -> list[str]:
    found = sections(text)
    return [name for name in names if len(found.get(name, "").split()) < MIN_WORDS]


def test_every_package_has_its_paragraph() -> None:
    names = packages(PKG)
    assert "web/api/" in names and "children/" in names
    assert undocumented(DOC.read_text(encoding="utf-8"), names) == []


def test_every_top_level_module_is_named() -> None:
    top = sections(DOC.read_text(encoding="utf-8"))["comfyui_docker/"]
    modules = sorted(p.name for p in PKG.glob("*.py") if p.name != "__init__.py")
    assert [m for m in modules if f"`{m}`" not in top] == []


def test_a_package_without_a_paragraph_is_found() -> None:
    text = "### `catalog/`\n\n" + "word " * MIN_WORDS + "\n\n### `web/`\n\ntoo short\n\n## Flows\n"
    assert undocumented(text, ["catalog/", "web/", "nodes/"]) == ["web/", "nodes/"]


def test_the_readme_points_to_the_map() -> None:
    assert "docs/architecture.md" in (REPO / "README.md").read_text(encoding="utf-8")
