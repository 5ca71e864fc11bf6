"""The trigger rule language: a tiny, safe expression grammar (no eval, no Python).

    expr  := NAME [ "(" [ arg ("," arg)* ] ")" ]
    arg   := expr | NUMBER | STRING

Combinators `all(...)`, `any(...)`, `not(x)` nest predicates; a predicate is a built-in signal
with optional arguments: `motion`, `motion(12)`, `barcode`, `low_confidence(0.5)`,
`campaign("sku:1234")`, `weight_change(50)`, `disagreement`. Every error names the character
position, so a rule pushed from the cloud that does not parse is rejected with a useful message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

MAX_RULE_LEN = 2000  # a rule is a one-liner; anything longer is hostile or broken
MAX_DEPTH = 16  # nesting limit keeps evaluation and error messages bounded


class RuleError(ValueError):
    """A rule does not parse or names something unknown; `pos` is the 0-based character offset."""

    def __init__(self, rule: str, pos: int, reason: str) -> None:
        self.rule, self.pos, self.reason = rule, pos, reason
        pointer = " " * min(pos, 200) + "^"
        super().__init__(f"rule {rule[:200]!r}: {reason} at position {pos}\n  {rule[:200]}\n  {pointer}")


Arg = Union["Call", float, str]


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Arg, ...]
    pos: int  # where the name starts, for error messages

    def __str__(self) -> str:
        if not self.args:
            return self.name
        return f"{self.name}({', '.join(_fmt(a) for a in self.args)})"


def _fmt(a: Arg) -> str:
    if isinstance(a, str):
        return '"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(a, float):
        return f"{a:g}"
    return str(a)


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<punct>[(),])
""", re.VERBOSE)


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(rule: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(rule):
        m = _TOKEN.match(rule, pos)
        if not m:
            raise RuleError(rule, pos, f"unexpected character {rule[pos]!r}")
        if m.lastgroup != "ws":
            toks.append(_Tok(m.lastgroup or "", m.group(), pos))
        pos = m.end()
    toks.append(_Tok("end", "", len(rule)))
    return toks


def parse_rule(rule: str) -> Call:
    """Parse one rule expression into a Call tree (syntax only; names are checked by compile)."""
    if not isinstance(rule, str):
        raise RuleError(str(rule), 0, f"a rule must be a string, got {type(rule).__name__}")
    if len(rule) > MAX_RULE_LEN:
        raise RuleError(rule, MAX_RULE_LEN, f"longer than {MAX_RULE_LEN} characters")
    if not rule.strip():
        raise RuleError(rule, 0, "empty rule")
    toks = _tokenize(rule)
    i = 0

    def peek() -> _Tok:
        return toks[i]

    def take(kind: str, text: str | None = None) -> _Tok:
        nonlocal i
        t = toks[i]
        if t.kind != kind or (text is not None and t.text != text):
            want = repr(text) if text else kind
            got = "end of rule" if t.kind == "end" else repr(t.text)
            raise RuleError(rule, t.pos, f"expected {want}, got {got}")
        i += 1
        return t

    def expr(depth: int) -> Call:
        t = peek()
        if depth > MAX_DEPTH:
            raise RuleError(rule, t.pos, f"nested deeper than {MAX_DEPTH}")
        name = take("name")
        args: list[Arg] = []
        if peek().kind == "punct" and peek().text == "(":
            take("punct", "(")
            if not (peek().kind == "punct" and peek().text == ")"):
                args.append(arg(depth + 1))
                while peek().kind == "punct" and peek().text == ",":
                    take("punct", ",")
                    args.append(arg(depth + 1))
            take("punct", ")")
        return Call(name.text, tuple(args), name.pos)

    def arg(depth: int) -> Arg:
        t = peek()
        if t.kind == "number":
            take("number")
            return float(t.text)
        if t.kind == "string":
            take("string")
            return re.sub(r"\\(.)", r"\1", t.text[1:-1])
        if t.kind == "name":
            return expr(depth)
        got = "end of rule" if t.kind == "end" else repr(t.text)
        raise RuleError(rule, t.pos, f"expected a predicate, number or string, got {got}")

    tree = expr(0)
    if peek().kind != "end":
        raise RuleError(rule, peek().pos, f"unexpected {peek().text!r} after the rule")
    return tree
