"""The release gate: explicit rules over the candidate's and production's evaluation.

Rules (thresholds in GateRules):
  onnx_agreement   ONNX Runtime matches torch on the golden inputs (max |diff|, top-1 agreement)
  latency          p95 ONNX CPU latency at batch 1 within the budget
  target_metric    candidate - production >= min_improvement (no production: >= bootstrap_min_target)
  insertion_top1   the worst insertion set's insertion-level top-1 >= min_insertion_top1
  slice_regression no slice with >= min_slice_size frames drops by more than max_slice_regression
                   (insertion slices "ins:<set>" count insertions)

`decide` is pure (unit-tested on hand-made numbers); `recheck_gate` is what the release path calls:
it re-reads the stored evaluation, re-runs the ONNX golden check on the bytes in the registry and
refuses when production moved since the candidate was evaluated.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import asdict, dataclass, field

import numpy as np

from edge_agent.lake import Lake, ObjectNotFound
from flywheel.learner import registry
from flywheel.learner.config import GateRules
from flywheel.learner.documents import GateDecisionV1, ModelCardV1


@dataclass(frozen=True)
class RuleResult:
    name: str
    passed: bool
    actual: float | None
    threshold: float | None
    detail: str


@dataclass
class GateDecision:
    candidate_id: str
    production_id: str | None
    passed: bool
    rules: list[RuleResult] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        return [f"{r.name}: {r.detail}" for r in self.rules if not r.passed]

    def to_dict(self) -> dict:
        return {"candidate_id": self.candidate_id, "production_id": self.production_id,
                "passed": self.passed, "reasons": self.reasons, "rules": [asdict(r) for r in self.rules]}

    def check_metadata(self) -> dict[str, object]:
        """What the blocking check reports: the judged candidate, every rule's actual and threshold,
        the target metric's as the check's own `actual`/`threshold`, and the reasons if blocked."""
        out: dict[str, object] = {"candidate": self.candidate_id,
                                  "production": self.production_id or "none"}
        for r in self.rules:
            out[f"{r.name}.actual"] = r.actual
            out[f"{r.name}.threshold"] = r.threshold
        target = next((r for r in self.rules if r.name == "target_metric"), None)
        out["actual"] = target.actual if target else None
        out["threshold"] = target.threshold if target else None
        if not self.passed:
            out["reasons"] = "; ".join(self.reasons)
        return out

    def markdown(self) -> str:
        head = "PASSED" if self.passed else "BLOCKED"
        lines = [f"**Gate {head}** for `{self.candidate_id}` vs production `{self.production_id}`", "",
                 "| rule | ok | actual | threshold | detail |", "|---|---|---:|---:|---|"]
        for r in self.rules:
            a = "-" if r.actual is None else f"{r.actual:.4g}"
            t = "-" if r.threshold is None else f"{r.threshold:.4g}"
            lines.append(f"| {r.name} | {'yes' if r.passed else 'NO'} | {a} | {t} | {r.detail} |")
        return "\n".join(lines)


def decide(candidate_id: str, candidate_eval: dict, onnx_validation: dict, rules: GateRules,
           production_id: str | None = None, production_eval: dict | None = None) -> GateDecision:
    results: list[RuleResult] = []

    ok = bool(onnx_validation.get("passed"))
    diff, agree = onnx_validation.get("max_abs_diff"), onnx_validation.get("top1_agreement")
    if diff is None or agree is None:
        detail = onnx_validation.get("reason") or "no ONNX validation recorded"
    else:
        detail = (f"max |onnx - torch| {diff:.3g}, top-1 agreement {agree:.3f} on "
                  f"{onnx_validation.get('n')} golden inputs"
                  + ("" if ok else f" ({onnx_validation.get('reason', 'mismatch')})"))
    results.append(RuleResult("onnx_agreement", ok, diff, rules.onnx_max_abs_diff, detail))

    lat = candidate_eval.get("metrics", {}).get("latency_p95_ms")
    results.append(RuleResult(
        "latency", lat is not None and lat <= rules.latency_budget_ms, lat, rules.latency_budget_ms,
        "p95 batch-1 ONNX Runtime CPU latency" if lat is not None else "latency not measured"))

    target = candidate_eval.get("metrics", {}).get(rules.target_metric)
    if target is None:
        results.append(RuleResult("target_metric", False, None, None,
                                  f"{rules.target_metric} missing from the candidate's evaluation"))
    elif production_eval is None:
        results.append(RuleResult(
            "target_metric", target >= rules.bootstrap_min_target, target, rules.bootstrap_min_target,
            f"bootstrap (no production model): {rules.target_metric} {target:.4f} "
            f"must be >= {rules.bootstrap_min_target:.4f}"))
    else:
        prod = production_eval.get("metrics", {}).get(rules.target_metric)
        delta = target - prod if prod is not None else None
        results.append(RuleResult(
            "target_metric", delta is not None and delta >= rules.min_improvement, delta,
            rules.min_improvement,
            f"{rules.target_metric} {target:.4f} vs production {prod if prod is None else f'{prod:.4f}'}"
            f" (delta {delta if delta is None else f'{delta:+.4f}'}, need >= {rules.min_improvement:+.4f})"))

    results.extend(_insertion_rule(candidate_eval, rules))

    if production_eval is not None:
        worst_name, worst_drop, regressed = None, None, []
        metric = rules.slice_metric
        for name, s in sorted(candidate_eval.get("slices", {}).items()):
            p = production_eval.get("slices", {}).get(name)
            if not p or s.get(metric) is None or p.get(metric) is None:
                continue
            if min(s["n"], p["n"]) < rules.min_slice_size:
                continue
            drop = p[metric] - s[metric]
            if worst_drop is None or drop > worst_drop:
                worst_name, worst_drop = name, drop
            if drop > rules.max_slice_regression:
                regressed.append(f"{name} {p[metric]:.3f} -> {s[metric]:.3f} (n={s['n']})")
        detail = (f"regressed: {', '.join(regressed)}" if regressed else
                  f"worst slice {worst_name} drop {worst_drop:+.4f}" if worst_name else
                  f"no slice with >= {rules.min_slice_size} frames")
        results.append(RuleResult("slice_regression", not regressed, worst_drop,
                                  rules.max_slice_regression, detail))
    return GateDecision(candidate_id, production_id, all(r.passed for r in results), results)


def _insertion_rule(candidate_eval: dict, rules: GateRules) -> list[RuleResult]:
    """Insertion-level top-1 of the worst insertion set vs `min_insertion_top1`; absent when the
    evaluation had no insertion sets and no floor is set (older evaluations stay decidable)."""
    worst = candidate_eval.get("metrics", {}).get("insertion_top1_min_set")
    floor = rules.min_insertion_top1
    if worst is None:
        if floor <= 0:
            return []
        return [RuleResult("insertion_top1", False, None, floor,
                           "no insertion-level evaluation (no insertion sets imported)")]
    sets = candidate_eval.get("insertions", {})
    per = ", ".join(f"{k} {v['top1']:.3f}" for k, v in sorted(sets.items()) if v.get("top1") is not None)
    return [RuleResult("insertion_top1", worst >= floor, worst, floor,
                       f"worst insertion set {worst:.4f} (barcode + confidence vote), need >= "
                       f"{floor:.4f}" + (f"; {per}" if per else ""))]


# -- the release path's re-check ------------------------------------------------------------------

def _golden_check(lake: Lake, model_id: str, card: ModelCardV1, rules: GateRules) -> dict:
    from flywheel.learner.onnx_tools import compare_outputs, onnx_outputs, onnx_session

    onnx_bytes = lake.get(registry.key(model_id, "model.onnx"))
    recorded = card.files["model.onnx"].sha256 if "model.onnx" in card.files else None
    if recorded and hashlib.sha256(onnx_bytes).hexdigest() != recorded:
        return {"passed": False, "reason": "model.onnx in the registry does not match its card's sha256",
                "max_abs_diff": None, "top1_agreement": None, "n": 0}
    golden = np.load(io.BytesIO(lake.get(registry.key(model_id, "golden.npz"))))
    got = onnx_outputs(onnx_session(onnx_bytes), golden["inputs"])
    result = compare_outputs(golden["expected"], got, rules.onnx_max_abs_diff,
                             rules.onnx_min_top1_agreement, card.task)
    det = card.preprocessing.get("two_stage", {}).get("detector")
    if det and result["passed"]:  # a two-stage model: its detector, the same way
        det_bytes = lake.get(registry.key(model_id, det["file"]))
        entry = card.files.get(det["file"])
        if entry is None or hashlib.sha256(det_bytes).hexdigest() != entry.sha256:
            return {**result, "passed": False,
                    "reason": f"{det['file']} in the registry does not match its card's sha256"}
        from edge_agent.crop import golden_scale

        inputs = golden["detector_inputs"]
        got = onnx_outputs(onnx_session(det_bytes), inputs)
        det_result = compare_outputs(golden_scale(golden["detector_expected"], inputs.shape[-1]),
                                     golden_scale(got, inputs.shape[-1]), rules.onnx_max_abs_diff,
                                     0.0, "detect")
        if not det_result["passed"]:
            return {**result, "passed": False, "reason": f"detector: {det_result['reason']}"}
    return result


def recheck_gate(lake: Lake, model_id: str, rules: GateRules | None = None) -> GateDecision:
    """Re-decide from the registry alone; what the release stage calls before moving anything."""
    card = registry.read_card(lake, model_id)
    rules = rules or GateRules.for_task(card.task)
    try:
        evaluation = registry.read_evaluation(lake, model_id)
    except ObjectNotFound:
        return GateDecision(model_id, None, False, [RuleResult(
            "evaluation", False, None, None, "no evaluation.json: the candidate was never evaluated")])
    onnx_validation = _golden_check(lake, model_id, card, rules)
    production = evaluation.production.model_dump() if evaluation.production else None
    decision = decide(model_id, evaluation.candidate.model_dump(), onnx_validation, rules,
                      evaluation.production_id, production)
    current = registry.production_model_id(lake)
    if current != evaluation.production_id and current != model_id:
        decision.rules.append(RuleResult(
            "fresh_baseline", False, None, None,
            f"production moved to {current} since the evaluation against "
            f"{evaluation.production_id}; re-evaluate"))
        decision.passed = False
    return decision


def write_decision(lake: Lake, decision: GateDecision) -> None:
    registry.write_gate(lake, GateDecisionV1.model_validate(decision.to_dict()))

