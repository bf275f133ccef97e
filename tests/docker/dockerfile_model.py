"""A Dockerfile read into instructions and stages (enough to compare it with the bake file)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Instruction:
    cmd: str
    args: str
    line: int


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, cmd: str) -> list[Instruction]:
        return [i for i in self.instructions if i.cmd == cmd]

    def args(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for ins in self.all("ARG"):
            name, _, default = ins.args.partition("=")
            out[name.strip()] = default if "=" in ins.args else None
        return out


@dataclass
class Dockerfile:
    global_args: dict[str, str | None]
    stages: dict[str, Stage]

    @property
    def all_args(self) -> set[str]:
        names = set(self.global_args)
        for stage in self.stages.values():
            names |= set(stage.args())
        return names


def instructions(text: str) -> list[Instruction]:
    out: list[Instruction] = []
    buf: list[str] = []
    start = 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue  # comment inside a continued instruction
        if not buf:
            start = n
        if line.endswith("\\"):
            buf.append(line[:-1])
            continue
        buf.append(line)
        joined = " ".join(part.strip() for part in buf)
        cmd, _, rest = joined.partition(" ")
        out.append(Instruction(cmd.upper(), rest.strip(), start))
        buf = []
    return out


def parse(path: Path) -> Dockerfile:
    global_args: dict[str, str | None] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for ins in instructions(path.read_text(encoding="utf-8")):
        if ins.cmd == "FROM":
            m = re.match(r"(?:--platform=\S+\s+)?(\S+)\s+AS\s+(\S+)$", ins.args, re.IGNORECASE)
            if not m:
                raise ValueError(f"line {ins.line}: every stage needs a name: FROM {ins.args}")
            current = Stage(m.group(2), m.group(1))
            stages[current.name] = current
        elif current is None:
            if ins.cmd != "ARG":
                raise ValueError(f"line {ins.line}: only ARG may come before the first FROM")
            name, _, default = ins.args.partition("=")
            global_args[name.strip()] = default if "=" in ins.args else None
        else:
            current.instructions.append(ins)
    return Dockerfile(global_args, stages)


def copy_sources(ins: Instruction) -> tuple[str | None, list[str]]:
    """(`--from` stage or None, source paths) of a COPY."""
    words = shlex.split(ins.args)
    stage = None
    rest = []
    for w in words:
        if w.startswith("--from="):
            stage = w.split("=", 1)[1]
        elif not w.startswith("--"):
            rest.append(w)
    return stage, rest[:-1]
