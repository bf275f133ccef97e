"""Enough of HCL and of `docker buildx bake --print` to check docker/docker-bake.hcl without buildx.

Covers the subset the bake file uses: blocks with labels, attributes, strings with `${...}`
templates, lists, objects, attribute access, `==`/`!=`, `cond ? a : b`, calls of `concat`,
`equal`, `notequal`, `replace`, `join`, `lookup`, `merge` and of the file's own `function` blocks;
then bake's rules: variables (an environment value overrides a default), `inherits` (args and labels merged),
`matrix` (every combination, named by `name`), groups naming matrix blocks. Anything else is a
ParseError, so the file cannot drift outside what is checked here without a test failing.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class ParseError(Exception):
    pass


TOKEN_RE = re.compile(
    r"""
    (?P<ws>[ \t\r]+) | (?P<comment>\#[^\n]*|//[^\n]*|/\*.*?\*/) | (?P<nl>\n)
    | (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<number>\d+(?:\.\d+)?)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_-]*)
    | (?P<op>==|!=|&&|\|\||[{}\[\]()=,.?:!])
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass
class Tok:
    kind: str
    value: str
    line: int


def tokenize(text: str) -> list[Tok]:
    out: list[Tok] = []
    pos, line = 0, 1
    while pos < len(text):
        m = TOKEN_RE.match(text, pos)
        if not m:
            raise ParseError(f"line {line}: unexpected {text[pos : pos + 20]!r}")
        kind = m.lastgroup or ""
        value = m.group()
        if kind == "nl":
            out.append(Tok("nl", value, line))
        elif kind not in ("ws", "comment"):
            out.append(Tok(kind, value, line))
        line += value.count("\n")
        pos = m.end()
    out.append(Tok("eof", "", line))
    return out


# ---- expressions (AST as tuples) --------------------------------------------------------------
class Parser:
    def __init__(self, toks: list[Tok]) -> None:
        self.toks = toks
        self.i = 0
        self.depth = 0  # inside (), [] or an object: newlines do not end anything

    def peek(self) -> Tok:
        j = self.i
        while self.depth and self.toks[j].kind == "nl":
            j += 1
        return self.toks[j]

    def next(self) -> Tok:
        tok = self.peek()
        self.i = self.toks.index(tok, self.i) + 1
        return tok

    def expect(self, value: str) -> Tok:
        tok = self.next()
        if tok.value != value:
            raise ParseError(f"line {tok.line}: expected {value!r}, got {tok.value!r}")
        return tok

    def skip_nl(self) -> None:
        while self.toks[self.i].kind == "nl":
            self.i += 1

    # body := (attribute | block)*
    def body(self, end: str = "eof") -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        blocks: list[tuple[str, list[str], dict[str, Any]]] = []
        while True:
            self.skip_nl()
            tok = self.toks[self.i]
            if (end == "eof" and tok.kind == "eof") or tok.value == end:
                break
            if tok.kind != "ident":
                raise ParseError(f"line {tok.line}: expected a name, got {tok.value!r}")
            self.i += 1
            if self.toks[self.i].value == "=":
                self.i += 1
                attrs[tok.value] = self.expr()
                continue
            labels: list[str] = []
            while self.toks[self.i].kind == "string":
                labels.append(_unquote(self.toks[self.i].value))
                self.i += 1
            if self.toks[self.i].value != "{":
                raise ParseError(f"line {tok.line}: expected '{{' after block {tok.value}")
            self.i += 1
            inner = self.body("}")
            self.i += 1
            blocks.append((tok.value, labels, inner))
        return {"attrs": attrs, "blocks": blocks}

    def expr(self) -> Any:
        cond = self.binary()
        if self.peek().value == "?":
            self.next()
            yes = self.expr()
            self.expect(":")
            no = self.expr()
            return ("cond", cond, yes, no)
        return cond

    def binary(self) -> Any:
        left = self.unary()
        while self.peek().value in ("==", "!=", "&&", "||"):
            op = self.next().value
            left = ("op", op, left, self.unary())
        return left

    def unary(self) -> Any:
        if self.peek().value == "!":
            self.next()
            return ("not", self.unary())
        return self.postfix()

    def postfix(self) -> Any:
        node = self.primary()
        while self.peek().value in (".", "["):
            if self.next().value == ".":
                node = ("attr", node, self.next().value)
            else:
                self.depth += 1
                key = self.expr()
                self.expect("]")
                self.depth -= 1
                node = ("index", node, key)
        return node

    def primary(self) -> Any:
        tok = self.next()
        if tok.kind == "string":
            return ("tmpl", _template(_unquote(tok.value)))
        if tok.kind == "number":
            return ("lit", float(tok.value) if "." in tok.value else int(tok.value))
        if tok.kind == "ident":
            if tok.value in ("true", "false", "null"):
                return ("lit", {"true": True, "false": False, "null": None}[tok.value])
            if self.toks[self.i].value == "(":
                return ("call", tok.value, self.items(")"))
            return ("var", tok.value)
        if tok.value == "(":
            self.depth += 1
            inner = self.expr()
            self.expect(")")
            self.depth -= 1
            return inner
        if tok.value == "[":
            return ("list", self.items("]", opened=True))
        if tok.value == "{":
            return ("obj", self.object())
        raise ParseError(f"line {tok.line}: unexpected {tok.value!r}")

    def items(self, close: str, *, opened: bool = False) -> list[Any]:
        if not opened:
            self.expect("(")
        self.depth += 1
        out: list[Any] = []
        while self.peek().value != close:
            out.append(self.expr())
            if self.peek().value == ",":
                self.next()
            elif self.peek().value != close:
                raise ParseError(f"line {self.peek().line}: expected ',' or {close!r}")
        self.next()
        self.depth -= 1
        return out

    def object(self) -> list[tuple[str, Any]]:
        self.depth += 1
        out: list[tuple[str, Any]] = []
        while self.peek().value != "}":
            key = self.next()
            if key.kind not in ("ident", "string"):
                raise ParseError(f"line {key.line}: bad object key {key.value!r}")
            if self.next().value not in ("=", ":"):
                raise ParseError(f"line {key.line}: expected '=' after {key.value}")
            out.append((_unquote(key.value) if key.kind == "string" else key.value, self.expr()))
            if self.peek().value == ",":
                self.next()
        self.next()
        self.depth -= 1
        return out


def _unquote(raw: str) -> str:
    body = raw[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def _template(text: str) -> list[Any]:
    """A string's parts: literal text and parsed `${...}` expressions (`$${` is a literal `${`)."""
    parts: list[Any] = []
    pos = 0
    while True:
        start = text.find("${", pos)
        if start < 0:
            parts.append(text[pos:])
            return parts
        if start > 0 and text[start - 1] == "$":
            parts.append(text[pos : start - 1] + "${")
            pos = start + 2
            continue
        parts.append(text[pos:start])
        depth, end = 0, start + 2
        while end < len(text):
            if text[end] == "{":
                depth += 1
            elif text[end] == "}":
                if depth == 0:
                    break
                depth -= 1
            end += 1
        parser = Parser(tokenize(text[start + 2 : end]))
        parser.depth = 1
        parts.append(("expr", parser.expr()))
        pos = end + 1


# ---- evaluation -------------------------------------------------------------------------------
BUILTINS: dict[str, Callable[..., Any]] = {
    "concat": lambda *lists: [x for lst in lists for x in lst],
    "equal": lambda a, b: a == b,
    "notequal": lambda a, b: a != b,
    "replace": lambda s, old, new: s.replace(old, new),
    "join": lambda sep, items: sep.join(items),
    "lookup": lambda m, k, *default: m[k] if k in m or not default else default[0],
    "merge": lambda *maps: {k: v for m in maps for k, v in m.items()},
}


@dataclass
class Scope:
    values: dict[str, Any]
    functions: dict[str, Callable[..., Any]] = field(default_factory=dict)

    def child(self, **more: Any) -> Scope:
        return Scope({**self.values, **more}, self.functions)


def evaluate(node: Any, scope: Scope) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "tmpl":
        parts = node[1]
        if len(parts) == 3 and parts[0] == "" and parts[2] == "" and isinstance(parts[1], tuple):
            return evaluate(parts[1][1], scope)  # "${x}" keeps x's type
        return "".join(p if isinstance(p, str) else _str(evaluate(p[1], scope)) for p in parts)
    if kind == "var":
        if node[1] not in scope.values:
            raise ParseError(f"unknown name {node[1]!r}")
        return scope.values[node[1]]
    if kind == "attr":
        return evaluate(node[1], scope)[node[2]]
    if kind == "index":
        return evaluate(node[1], scope)[evaluate(node[2], scope)]
    if kind == "list":
        return [evaluate(x, scope) for x in node[1]]
    if kind == "obj":
        return {k: evaluate(v, scope) for k, v in node[1]}
    if kind == "cond":
        return evaluate(node[2] if evaluate(node[1], scope) else node[3], scope)
    if kind == "not":
        return not evaluate(node[1], scope)
    if kind == "op":
        a, b = evaluate(node[2], scope), evaluate(node[3], scope)
        return {"==": a == b, "!=": a != b, "&&": a and b, "||": a or b}[node[1]]
    if kind == "call":
        func = scope.functions.get(node[1]) or BUILTINS.get(node[1])
        if func is None:
            raise ParseError(f"function {node[1]!r} is not supported by this checker")
        return func(*[evaluate(a, scope) for a in node[2]])
    raise ParseError(f"cannot evaluate {kind}")


def _str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ParseError(f"cannot put {value!r} into a string")


# ---- bake -------------------------------------------------------------------------------------
TARGET_KEYS = {"context", "dockerfile", "target", "platforms", "args", "tags", "labels"}
MAPS = ("args", "labels")  # merged along `inherits`, key by key


def bake_print(text: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What `docker buildx bake --print all-the-things` would resolve: groups and targets."""
    env = env or {}
    tree = Parser(tokenize(text)).body()
    if tree["attrs"]:
        raise ParseError(f"top-level attributes are not bake: {sorted(tree['attrs'])}")
    scope = Scope({})
    blocks = tree["blocks"]
    for kind, labels, body in blocks:
        if kind == "variable":
            (name,) = labels
            default = evaluate(body["attrs"]["default"], scope) if "default" in body["attrs"] else ""
            scope.values[name] = env.get(name, default) if isinstance(default, str) else default
    for kind, labels, body in blocks:
        if kind == "function":
            (name,) = labels
            params = [p[1] for p in body["attrs"]["params"][1]]
            result = body["attrs"]["result"]

            def call(*args: Any, _params: list[str] = params, _result: Any = result) -> Any:
                return evaluate(_result, scope.child(**dict(zip(_params, args, strict=True))))

            scope.functions[name] = call
    raw_targets: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[str]] = {}
    for kind, labels, body in blocks:
        if kind == "group":
            groups[labels[0]] = evaluate(body["attrs"]["targets"], scope)
        elif kind == "target":
            attrs = dict(body["attrs"])
            matrix_node = attrs.pop("matrix", None)
            name_node = attrs.pop("name", None)
            if matrix_node is None:
                raw_targets[labels[0]] = {k: evaluate(v, scope) for k, v in attrs.items()}
                continue
            matrix = evaluate(matrix_node, scope)
            keys = list(matrix)
            generated = []
            for combo in itertools.product(*(matrix[k] for k in keys)):
                sub = scope.child(**dict(zip(keys, combo, strict=True)))
                name = evaluate(name_node, sub)
                raw_targets[name] = {k: evaluate(v, sub) for k, v in attrs.items()}
                generated.append(name)
            groups[labels[0]] = generated
        elif kind not in ("variable", "function"):
            raise ParseError(f"block {kind!r} is not bake")

    def resolve(name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
        if name in seen:
            raise ParseError(f"inherits loop through {name}")
        raw = raw_targets[name]
        out: dict[str, Any] = {"context": ".", "dockerfile": "Dockerfile"}
        for parent in raw.get("inherits", []):
            base = resolve(parent, (*seen, name))
            out.update({k: v for k, v in base.items() if k not in MAPS})
            for key in MAPS:
                out[key] = {**out.get(key, {}), **base.get(key, {})}
        for key, value in raw.items():
            if key == "inherits":
                continue
            if key not in TARGET_KEYS:
                raise ParseError(f"target {name}: attribute {key!r} is not checked here")
            out[key] = {**out.get(key, {}), **value} if key in MAPS else value
        return out

    targets = {name: resolve(name) for name in raw_targets}
    return {"group": groups, "target": targets}


def expand(resolved: dict[str, Any], names: list[str]) -> list[str]:
    """Target names a bake invocation with `names` builds (groups expanded, in order, once)."""
    out: list[str] = []
    for name in names:
        if name in resolved["group"]:
            for sub in expand(resolved, resolved["group"][name]):
                if sub not in out:
                    out.append(sub)
        elif name in resolved["target"]:
            if name not in out:
                out.append(name)
        else:
            raise KeyError(name)
    return out
