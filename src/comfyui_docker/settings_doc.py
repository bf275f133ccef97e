"""The README's settings tables, written from `settings.SPECS` (where each setting is declared)
and `serverless.config.SPECS` (the settings only a serverless worker reads).

    python -m comfyui_docker.settings_doc [--check] [README.md]     (`make docs` runs it)

Rewrites what lies between each pair of markers in the file (the serverless table's are
optional); `--check` changes nothing and exits 1 when the file differs from what the specs say
(the test suite checks the same).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .settings import SPECS, Spec

START = "<!-- settings-table: generated from settings.SPECS by `make docs`; edit the specs, not the table -->"
END = "<!-- /settings-table -->"
SERVERLESS_START = (
    "<!-- serverless-settings-table: generated from serverless.config.SPECS by `make docs`; "
    "edit the specs, not the table -->"
)
SERVERLESS_END = "<!-- /serverless-settings-table -->"


def row(spec: Spec[Any]) -> str:
    name = f"`{spec.env}`"
    if spec.aliases:
        name += " (or " + ", ".join(f"`{a}`" for a in spec.aliases) + ")"
    default = f"`{spec.doc_default}`" if spec.doc_default else "(empty)"
    what = spec.help + (" Secret: never logged." if spec.secret else "")
    return f"| {name} | {default} | {what} |"


def table(specs: Iterable[Spec[Any]] = SPECS) -> str:
    lines = ["| variable | default | what it does |", "|---|---|---|"]
    lines += [row(spec) for spec in specs]
    return "\n".join(lines) + "\n"


def splice(text: str, body: str, start_marker: str = START, end_marker: str = END) -> str:
    """`text` with what lies between the markers replaced by `body`."""
    start = text.find(start_marker)
    end = text.find(end_marker, start)
    if start < 0 or end < 0:
        raise ValueError(
            f"the settings table markers are missing; put {start_marker!r} and {end_marker!r} around it"
        )
    head = text[: start + len(start_marker)]
    return f"{head}\n\n{body}\n{text[end:]}"


def render(text: str) -> str:
    """`text` with every settings table rewritten (the serverless one where its markers are)."""
    from .serverless.config import SPECS as SERVERLESS_SPECS

    text = splice(text, table())
    if SERVERLESS_START in text:
        text = splice(text, table(SERVERLESS_SPECS), SERVERLESS_START, SERVERLESS_END)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m comfyui_docker.settings_doc", description=__doc__)
    parser.add_argument("readme", nargs="?", default="README.md", type=Path)
    parser.add_argument("--check", action="store_true", help="exit 1 if the table is out of date")
    args = parser.parse_args(argv)
    try:
        text = args.readme.read_text(encoding="utf-8")
        new = render(text)
    except (OSError, ValueError) as exc:
        print(f"error: {args.readme}: {exc}", file=sys.stderr)
        return 2
    if new == text:
        return 0
    if args.check:
        print(
            f"{args.readme}: the settings table differs from settings.SPECS; run `make docs`", file=sys.stderr
        )
        return 1
    args.readme.write_text(new, encoding="utf-8")
    print(f"{args.readme}: settings table rewritten ({len(SPECS)} settings)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
