"""Gate decisions on hand-made evaluations: pass, regressing slice, ONNX mismatch, latency, bootstrap."""

from __future__ import annotations

import copy

import numpy as np

from flywheel.learner.config import GateRules
from flywheel.learner.gate import decide
from flywheel.learner.onnx_tools import compare_outputs

RULES = GateRules(min_improvement=0.01, max_slice_regression=0.05, min_slice_size=30,
                  latency_budget_ms=10.0)
ONNX_OK = {"passed": True, "max_abs_diff": 1e-6, "top1_agreement": 1.0, "n": 20}


def evaluation(target: float, slices: dict[str, tuple[int, float]], latency: float = 2.0) -> dict:
    return {"metrics": {"production_top1": target, "latency_p95_ms": latency},
            "slices": {k: {"n": n, "top1": a} for k, (n, a) in slices.items()}}


PROD = evaluation(0.60, {"set:store_A": (200, 0.55), "cond:glare": (80, 0.50), "cond:damage": (10, 0.9)})


def rule(decision, name):
    return next(r for r in decision.rules if r.name == name)


def test_better_candidate_passes():
    cand = evaluation(0.66, {"set:store_A": (200, 0.62), "cond:glare": (80, 0.48), "cond:damage": (10, 0.1)})
    d = decide("cand", cand, ONNX_OK, RULES, "prod", PROD)
    assert d.passed, d.reasons
    assert [r.name for r in d.rules] == ["onnx_agreement", "latency", "target_metric", "slice_regression"]
    assert abs(rule(d, "target_metric").actual - 0.06) < 1e-9
    # the damage slice dropped 0.8 but has only 10 frames: reported as too small, not gated
    assert abs(rule(d, "slice_regression").actual - 0.02) < 1e-9
    assert "PASSED" in d.markdown()


def test_regressing_slice_blocks_with_reason_and_numbers():
    cand = evaluation(0.70, {"set:store_A": (200, 0.66), "cond:glare": (80, 0.40)})
    d = decide("cand", cand, ONNX_OK, RULES, "prod", PROD)
    assert not d.passed
    assert d.reasons == ["slice_regression: regressed: cond:glare 0.500 -> 0.400 (n=80)"]
    r = rule(d, "slice_regression")
    assert abs(r.actual - 0.10) < 1e-9 and r.threshold == 0.05
    assert "BLOCKED" in d.markdown() and "| slice_regression | NO |" in d.markdown()


def test_onnx_mismatch_blocks():
    torch_out = np.array([[2.0, 0.1, -1.0], [0.0, 3.0, 0.5]], np.float32)
    onnx_out = torch_out.copy()
    onnx_out[1] = [3.5, 3.0, 0.5]  # second frame now predicts class 0
    validation = compare_outputs(torch_out, onnx_out, RULES.onnx_max_abs_diff, 1.0)
    assert not validation["passed"] and validation["top1_agreement"] == 0.5
    cand = evaluation(0.70, {"set:store_A": (200, 0.60)})
    d = decide("cand", cand, validation, RULES, "prod", PROD)
    assert not d.passed
    assert len(d.reasons) == 1 and d.reasons[0].startswith("onnx_agreement: max |onnx - torch| 3.5")


def test_onnx_limit_scales_with_logits_not_probabilities():
    logits = np.array([[12.0, -3.0, 0.5]], np.float32)
    off = logits + np.float32(0.00123)  # float32 noise at 12: 1e-4 relative
    v = compare_outputs(logits, off, 1e-3, 1.0)
    assert v["passed"] and v["output_scale"] == 12.0 and abs(v["max_abs_diff_limit"] - 0.012) < 1e-9
    probs = np.array([[0.9, 0.05, 0.05]], np.float32)
    v = compare_outputs(probs, probs + np.float32(0.00123), 1e-3, 1.0)
    assert not v["passed"] and v["max_abs_diff_limit"] == 1e-3 and "limit 0.001" in v["reason"]


def test_onnx_shape_mismatch_is_a_failed_validation():
    v = compare_outputs(np.zeros((2, 3), np.float32), np.zeros((2, 4), np.float32), 1e-3, 1.0)
    assert not v["passed"] and "shape" in v["reason"]


def test_no_improvement_and_slow_model_block():
    cand = evaluation(0.605, {"set:store_A": (200, 0.56)}, latency=30.0)
    d = decide("cand", cand, ONNX_OK, RULES, "prod", PROD)
    assert {r.name for r in d.rules if not r.passed} == {"target_metric", "latency"}
    assert abs(rule(d, "target_metric").actual - 0.005) < 1e-9
    assert rule(d, "latency").actual == 30.0 and rule(d, "latency").threshold == 10.0


def test_bootstrap_without_production_uses_the_absolute_floor():
    cand = evaluation(0.2, {})
    assert decide("cand", cand, ONNX_OK, RULES).passed
    floor = GateRules(bootstrap_min_target=0.5)
    d = decide("cand", cand, ONNX_OK, floor)
    assert not d.passed and "bootstrap" in d.reasons[0]


def test_missing_target_metric_blocks():
    cand = copy.deepcopy(PROD)
    del cand["metrics"]["production_top1"]
    d = decide("cand", cand, ONNX_OK, RULES, "prod", PROD)
    assert not d.passed and "missing" in rule(d, "target_metric").detail


def test_decision_record_is_plain_json_with_reasons():
    import json

    d = decide("cand", evaluation(0.7, {"set:store_A": (200, 0.3)}), ONNX_OK, RULES, "prod", PROD)
    stored = json.loads(json.dumps(d.to_dict()))  # what gate.json holds for the release stage
    assert stored["passed"] is False and stored["reasons"] == d.reasons
    assert stored["reasons"] == ["slice_regression: regressed: set:store_A 0.550 -> 0.300 (n=200)"]
    assert [r["name"] for r in stored["rules"]] == [r.name for r in d.rules]


def test_check_metadata_names_the_candidate_and_carries_actual_and_threshold():
    cand = evaluation(0.70, {"set:store_A": (200, 0.66), "cond:glare": (80, 0.40)})
    meta = decide("cand-7", cand, ONNX_OK, RULES, "prod", PROD).check_metadata()
    assert meta["candidate"] == "cand-7" and meta["production"] == "prod"
    assert abs(meta["actual"] - 0.10) < 1e-9 and meta["threshold"] == 0.01  # the target metric's
    assert meta["slice_regression.threshold"] == 0.05 and meta["latency.actual"] == 2.0
    assert meta["reasons"].startswith("slice_regression: regressed: cond:glare")
    assert "reasons" not in decide("cand", evaluation(0.9, {}), ONNX_OK, RULES).check_metadata()


def test_insertion_rule_reports_the_worst_set_and_blocks_below_its_floor():
    cand = evaluation(0.66, {"set:store_A": (200, 0.62), "ins:insertions_store_A": (60, 0.95)})
    cand["metrics"]["insertion_top1_min_set"] = 0.95
    cand["insertions"] = {"insertions_store_A": {"top1": 0.95}, "insertions_store_B": {"top1": 0.98}}
    r = rule(decide("cand", cand, ONNX_OK, RULES, "prod", PROD), "insertion_top1")
    assert r.passed and (r.actual, r.threshold) == (0.95, 0.0)  # default floor: reported only
    assert "insertions_store_A 0.950" in r.detail
    strict = GateRules(min_insertion_top1=0.97)
    d = decide("cand", cand, ONNX_OK, strict, "prod", PROD)
    assert not d.passed and rule(d, "insertion_top1").threshold == 0.97
    assert any(x.startswith("insertion_top1:") for x in d.reasons)


def test_insertion_slices_regressing_are_gated_like_any_slice():
    prod = copy.deepcopy(PROD)
    prod["slices"]["ins:insertions_store_B"] = {"n": 60, "top1": 0.97}
    cand = evaluation(0.66, {"set:store_A": (200, 0.62), "ins:insertions_store_B": (60, 0.85)})
    d = decide("cand", cand, ONNX_OK, RULES, "prod", prod)
    assert not d.passed and "ins:insertions_store_B" in rule(d, "slice_regression").detail


def test_missing_insertion_evaluation_blocks_only_when_a_floor_is_set():
    cand = evaluation(0.66, {})
    assert all(r.name != "insertion_top1" for r in decide("c", cand, ONNX_OK, RULES).rules)
    d = decide("c", cand, ONNX_OK, GateRules(min_insertion_top1=0.5))
    assert not d.passed and rule(d, "insertion_top1").actual is None
