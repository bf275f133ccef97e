"""The catalog is composed by libyaml when available: same presets, lines and problems as PyYAML's
pure-Python parser, and a broken file still gets the pure-Python parser's message."""

from __future__ import annotations

import pytest
import yaml

from comfyui_docker.catalog import loader

BROKEN_FIELDS = """\
presets:
  sd15:
    name: SD 1.5
    type: checkpoint
    files:
      - url: not-a-url
        path: checkpoints/x.safetensors
  other:
    name: 7
"""


def _pure(text: str) -> yaml.Node | None:
    return yaml.compose(text, Loader=yaml.SafeLoader)


@pytest.mark.skipif(not hasattr(yaml, "CSafeLoader"), reason="PyYAML is built without libyaml here")
@pytest.mark.parametrize("text", [loader.shipped_text(), BROKEN_FIELDS, "presets: [1, 2", "a: b: c\n"])
def test_libyaml_and_pure_python_agree(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = loader.parse_text(text, "x.yaml")
    monkeypatch.setattr(loader, "_compose", _pure)
    slow = loader.parse_text(text, "x.yaml")
    assert fast.presets == slow.presets
    assert fast.problems == slow.problems
    assert [p.source for p in fast.presets.values()] == [p.source for p in slow.presets.values()]
