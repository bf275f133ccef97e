"""The test suite needs nothing outside the repository (a clone has no `../shared` beside it).

Data the tests use lives under tests/ (the ComfyUI recordings in tests/data/comfyui-samples,
read through tests/comfy_samples.py). This guard fails when a test file names a folder outside
the checkout that only this team's machines have.
"""

from __future__ import annotations

import re
from pathlib import Path

from comfy_samples import SAMPLES, ground_truth_names, sample

TESTS = Path(__file__).resolve().parent

# `../shared`, `/work/shared`, and path building such as `REPO.parent / "shared"` or
# `parents[3] / "shared" / "comfyui-samples"`
OUTSIDE = re.compile(r"""\.\./shared\b|/work/shared\b|/\s*["']shared["']""")
TEXT_SUFFIXES = {".py", ".md", ".txt", ".yaml", ".yml", ".json", ".toml", ".cfg", ".ini", ".sh"}


def _files() -> list[Path]:
    return [
        p
        for p in sorted(TESTS.rglob("*"))
        if p.is_file() and p.suffix in TEXT_SUFFIXES and "data" not in p.relative_to(TESTS).parts[:1]
    ]


def test_no_test_file_refers_to_the_shared_folder() -> None:
    files = _files()
    assert len(files) > 50, "the scan found too few files to mean anything"
    offenders = [
        f"{p.relative_to(TESTS)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0).strip()}"
        for p in files
        for text in [p.read_text(encoding="utf-8", errors="replace")]
        for m in OUTSIDE.finditer(text)
        if p != Path(__file__).resolve()
    ]
    assert not offenders, "tests must read data under tests/, not ../shared:\n" + "\n".join(offenders)


def test_the_guard_catches_each_way_of_naming_it() -> None:
    for line in (
        'SAMPLES = REPO.parent / "shared" / "comfyui-samples"',
        "path = Path('/work/shared/comfyui-samples/queue.json')",
        "see ../shared/COMFYUI.md",
        'x = Path(__file__).parents[3] / "shared"',
    ):
        assert OUTSIDE.search(line), line
    for line in (
        "path: vae/shared_vae.safetensors",
        'groups = [("shared", files)]',
        "def test_shared_files():",
    ):
        assert not OUTSIDE.search(line), line


def test_the_recordings_are_in_the_checkout() -> None:
    assert (SAMPLES / "README.md").is_file()
    assert len(list(SAMPLES.glob("err_*.json"))) >= 10  # parametrizes test_generate's explainer test
    assert sample("queue.json") == {"queue_running": [], "queue_pending": []}
    assert len([n for n in ground_truth_names() if n.endswith(".api.json")]) >= 250
