"""Compile parsed rules into predicates, and versioned rule sets that can be hot-reloaded.

A rule set is a version string plus named rules, each an expression and a capture priority
(0 = upload first). In TOML:

    version = "2026-11-25.1"
    [[rules]]
    name = "scan"
    when = "all(motion, barcode)"
    priority = 3
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.triggers.dsl import Call, RuleError, parse_rule
from edge_agent.triggers.signals import SignalFrame

Value = float | str | bool | None
Predicate = Callable[[SignalFrame], tuple[bool, Value]]

DEFAULT_MOTION = 6.0  # grey levels of mean frame difference: above sensor noise, below a hand moving
DEFAULT_LOW_CONFIDENCE = 0.5
DEFAULT_WEIGHT_CHANGE_G = 50.0
CAMPAIGN_KINDS = ("sku", "aisle", "store")


@dataclass(frozen=True)
class _Spec:
    signals: frozenset[str]  # which computed signals the predicate needs
    params: tuple[tuple[str, type, Any], ...]  # (name, type, default); default ... = required
    doc: str


PREDICATES: dict[str, _Spec] = {
    "motion": _Spec(frozenset({"motion"}), (("threshold", float, DEFAULT_MOTION),),
                    "mean grey-level difference to the previous frame >= threshold"),
    "barcode": _Spec(frozenset({"barcode"}), (), "a retail barcode (EAN/UPC) was read"),
    "low_confidence": _Spec(frozenset(), (("below", float, DEFAULT_LOW_CONFIDENCE),
                                          ("scope", str, "frame")),
                            'model confidence < below; scope "frame" (each frame, the default) or '
                            '"insertion" (once per insertion, on the frame that closes it, with the '
                            "insertion decision's confidence: edge_agent/insertion.py)"),
    "campaign": _Spec(frozenset({"barcode"}), (("selector", str, ...),),
                      'selector "sku:<ean>" | "aisle:<id>" | "store:<id>"'),
    "weight_change": _Spec(frozenset({"weight"}), (("grams", float, DEFAULT_WEIGHT_CHANGE_G),),
                           "cart weight changed by >= grams within a second"),
    "disagreement": _Spec(frozenset({"barcode"}), (), "the barcode's SKU differs from the model's"),
    "shadow_disagreement": _Spec(frozenset({"shadow"}), (),
                                 "the shadow (candidate) model's top-1 differs from production's"),
}
COMBINATORS = ("all", "any", "not")


@dataclass(frozen=True)
class CompiledRule:
    name: str
    expr: str  # canonical text of the expression
    priority: int
    predicate: Predicate
    signals: frozenset[str]

    def __call__(self, frame: SignalFrame) -> tuple[bool, Value]:
        return self.predicate(frame)


def compile_rule(rule: str) -> tuple[Predicate, frozenset[str], str]:
    """Parse and compile; unknown names and bad arguments raise RuleError with a position."""
    tree = parse_rule(rule)
    pred, sigs = _compile(tree, rule)
    return pred, sigs, str(tree)


def _compile(node: Call, rule: str) -> tuple[Predicate, frozenset[str]]:
    if node.name in COMBINATORS:
        subs = []
        for a in node.args:
            if not isinstance(a, Call):
                raise RuleError(rule, node.pos, f"{node.name}() takes predicates, got {a!r}")
            subs.append(_compile(a, rule))
        if not subs:
            raise RuleError(rule, node.pos, f"{node.name}() needs at least one predicate")
        if node.name == "not" and len(subs) != 1:
            raise RuleError(rule, node.pos, "not() takes exactly one predicate")
        preds = [p for p, _ in subs]
        sigs = frozenset().union(*(s for _, s in subs))
        return _combinator(node.name, preds), sigs
    spec = PREDICATES.get(node.name)
    if spec is None:
        known = ", ".join(sorted([*PREDICATES, *COMBINATORS]))
        raise RuleError(rule, node.pos, f"unknown trigger {node.name!r} (known: {known})")
    if len(node.args) > len(spec.params):
        raise RuleError(rule, node.pos, f"{node.name} takes at most {len(spec.params)} argument(s)")
    values: list[Any] = []
    for i, (pname, ptype, default) in enumerate(spec.params):
        if i < len(node.args):
            a = node.args[i]
            if not isinstance(a, ptype) or isinstance(a, Call):
                raise RuleError(rule, node.pos, f"{node.name}: {pname} must be a "
                                f"{'number' if ptype is float else 'string'}, got {a!s}")
            values.append(a)
        elif default is ...:
            raise RuleError(rule, node.pos, f"{node.name} needs an argument {pname!r}")
        else:
            values.append(default)
    return _predicate(node.name, values, rule, node.pos), spec.signals


def _combinator(name: str, preds: list[Predicate]) -> Predicate:
    if name == "all":
        def all_(f: SignalFrame) -> tuple[bool, Value]:
            vals = []
            for p in preds:
                ok, v = p(f)
                if not ok:
                    return False, None
                vals.append(v)
            return True, vals[0] if len(vals) == 1 else ",".join(str(v) for v in vals)
        return all_
    if name == "any":
        def any_(f: SignalFrame) -> tuple[bool, Value]:
            for p in preds:
                ok, v = p(f)
                if ok:
                    return True, v
            return False, None
        return any_

    def not_(f: SignalFrame) -> tuple[bool, Value]:
        ok, _ = preds[0](f)
        return (not ok), None
    return not_


def _predicate(name: str, args: list[Any], rule: str, pos: int) -> Predicate:
    if name == "motion":
        th = float(args[0])
        return lambda f: (f.motion is not None and f.motion >= th, f.motion)
    if name == "barcode":
        return lambda f: (bool(f.barcodes), f.barcode_text)
    if name == "low_confidence":
        below = float(args[0])
        if not 0.0 < below <= 1.0:
            raise RuleError(rule, pos, f"low_confidence: threshold must be in (0, 1], got {below:g}")
        scope = str(args[1])
        if scope == "insertion":
            return lambda f: (f.insertion_confidence is not None and f.insertion_confidence < below,
                              None if f.insertion_confidence is None
                              else round(f.insertion_confidence, 4))
        if scope != "frame":
            raise RuleError(rule, pos, f'low_confidence: scope must be "frame" or "insertion", '
                            f"got {scope!r}")
        return lambda f: (f.confidence < below, round(f.confidence, 4))
    if name == "weight_change":
        grams = float(args[0])
        if grams <= 0:
            raise RuleError(rule, pos, f"weight_change: grams must be positive, got {grams:g}")
        return lambda f: (f.weight_delta_g is not None and abs(f.weight_delta_g) >= grams,
                          f.weight_delta_g)
    if name == "disagreement":
        def disagree(f: SignalFrame) -> tuple[bool, Value]:
            code, pred = f.barcode_text, f.prediction
            if code is None or pred is None or _same_sku(code, pred):
                return False, None
            return True, f"barcode={code} model={pred}"
        return disagree
    if name == "shadow_disagreement":
        def shadow_disagree(f: SignalFrame) -> tuple[bool, Value]:
            if not f.shadow_ran or f.shadow_prediction == f.prediction:
                return False, None
            return True, f"shadow={f.shadow_prediction} model={f.prediction}"
        return shadow_disagree
    # campaign
    selector = str(args[0])
    kind, _, target = selector.partition(":")
    if kind not in CAMPAIGN_KINDS or not target:
        raise RuleError(rule, pos, f"campaign selector {selector!r} must be one of "
                        + ", ".join(f'"{k}:<value>"' for k in CAMPAIGN_KINDS))

    def campaign(f: SignalFrame) -> tuple[bool, Value]:
        if kind == "sku":
            hit = any(_same_sku(target, c) for c in (f.prediction, f.barcode_text) if c)
        elif kind == "aisle":
            hit = f.aisle == target
        else:
            hit = f.store == target
        return hit, selector if hit else None
    return campaign


def _same_sku(a: str, b: str) -> bool:
    # A UPC-A read is the same product as the EAN-13 with a leading zero.
    return a.lstrip("0") == b.lstrip("0")


same_sku = _same_sku  # public: the agent's barcode-agreement health figure uses the same match


@dataclass(frozen=True)
class RuleSet:
    version: str
    rules: tuple[CompiledRule, ...]
    signals: frozenset[str] = field(default=frozenset())  # union of what the rules need

    def evaluate(self, frame: SignalFrame) -> list[tuple[CompiledRule, Value]]:
        fired = []
        for r in self.rules:
            ok, v = r(frame)
            if ok:
                fired.append((r, v))
        return fired


def build_rule_set(version: str, rules: Sequence[Mapping[str, Any]] | Mapping[str, str]
                   ) -> RuleSet:
    """Rules as [{name, when, priority}] or {name: expr}; every problem raises RuleError/ValueError."""
    if not isinstance(version, str) or not version.strip() or len(version) > 64:
        raise ValueError(f"rule set version must be a non-empty string of <= 64 chars, got {version!r}")
    items: list[Mapping[str, Any]]
    if isinstance(rules, Mapping):
        items = [{"name": k, "when": v} for k, v in rules.items()]
    else:
        items = list(rules)
    if not items:
        raise ValueError("a rule set needs at least one rule")
    compiled, names = [], set()
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ValueError(f"rules[{i}]: must be a table with name, when, priority")
        unknown = set(item) - {"name", "when", "priority"}
        if unknown:
            raise ValueError(f"rules[{i}]: unknown key(s) {sorted(unknown)}")
        name = item.get("name")
        if not isinstance(name, str) or not name or len(name) > 64:
            raise ValueError(f"rules[{i}].name: must be a non-empty string, got {name!r}")
        if name in names:
            raise ValueError(f"rules[{i}].name: duplicate rule name {name!r}")
        names.add(name)
        priority = item.get("priority", 5)
        if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 9:
            raise ValueError(f"rules[{i}].priority: must be an integer 0..9, got {priority!r}")
        when = item.get("when")
        if not isinstance(when, str):
            raise ValueError(f"rules[{i}].when: must be a rule string, got {when!r}")
        pred, sigs, canon = compile_rule(when)
        compiled.append(CompiledRule(name, canon, priority, pred, sigs))
    return RuleSet(version.strip(), tuple(compiled), frozenset().union(*(r.signals for r in compiled)))


def rule_set_from_mapping(doc: Mapping[str, Any]) -> RuleSet:
    unknown = set(doc) - {"version", "rules", "file", "reload_s"}
    if unknown:
        raise ValueError(f"triggers: unknown key(s) {sorted(unknown)}")
    return build_rule_set(doc.get("version", ""), doc.get("rules", []))


def load_rule_set(path: str | Path) -> RuleSet:
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not valid TOML: {e}") from None
    return rule_set_from_mapping(doc)


class RuleSetWatcher:
    """Hot reload: re-reads the rule file when it changes; a bad new file keeps the old rules."""

    def __init__(self, path: str | Path, current: RuleSet | None = None) -> None:
        self.path = Path(path)
        self.current = current or load_rule_set(self.path)
        self._stamp = self._stat()
        self.last_error: str | None = None
        self.reloads = 0

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
            return (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            return None

    def poll(self) -> RuleSet | None:
        """Return the new rule set if the file changed to a valid one with a new version."""
        stamp = self._stat()
        if stamp is None or stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            new = load_rule_set(self.path)
        except (ValueError, OSError) as e:
            self.last_error = str(e)
            return None
        self.last_error = None
        if new.version == self.current.version:
            return None
        self.current = new
        self.reloads += 1
        return new
