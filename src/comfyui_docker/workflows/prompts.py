"""Dynamic prompts, as ComfyUI's editor applies them to text widgets marked `dynamicPrompts`.

Before a prompt is queued the editor removes C-style comments (`// to the end of the line` and
`/* ... */`, which also cuts `https://...` in half) and replaces every `{a|b|c}` group by one of
its options, chosen at random (groups nest; a group with one option just loses its braces).
A backslash keeps the next character literal (both are kept in the text).
"""

from __future__ import annotations

import random as _random
import re
from collections.abc import Callable

_COMMENTS = re.compile(r"/\*.*?\*/|//[^\n\r\u2028\u2029]*", re.DOTALL)


def process_dynamic_prompt(text: str, choose: Callable[[int], int] | None = None) -> str:
    """`text` with comments removed and each `{...|...}` group resolved.

    `choose(n)` picks an option index in `range(n)`; random by default.
    """
    pick = choose or (lambda n: _random.randrange(n))
    source = _COMMENTS.sub("", text)
    return _Parser(source, pick).run()


class _Parser:
    def __init__(self, source: str, pick: Callable[[int], int]) -> None:
        self.source = source
        self.pick = pick
        self.pos = 0

    def _escape(self) -> str:
        nxt = self.source[self.pos] if self.pos < len(self.source) else ""
        self.pos += 1
        return "\\" + (nxt if nxt else "undefined")

    def run(self) -> str:
        parts: list[str] = []
        while self.pos < len(self.source):
            char = self.source[self.pos]
            self.pos += 1
            if char == "\\":
                parts.append(self._escape())
            elif char == "{":
                parts.append(self._group())
            else:
                parts.append(char)
        return "".join(parts)

    def _group(self) -> str:
        options: list[str] = []
        current: list[str] = []
        depth = 0
        while self.pos < len(self.source):
            char = self.source[self.pos]
            self.pos += 1
            if char == "\\":
                current.append(self._escape())
                continue
            if char == "{":
                depth += 1
            elif char == "}":
                if depth == 0:
                    break
                depth -= 1
            elif char == "|" and depth == 0:
                options.append("".join(current))
                current = []
                continue
            current.append(char)
        options.append("".join(current))
        chosen = options[self.pick(len(options))]
        return process_dynamic_prompt(chosen, self.pick)
