"""Trigger rules: the DSL (safe parsing, positioned errors), predicates, signals, hot reload."""

from __future__ import annotations

import os

import numpy as np
import pytest

from edge_agent.triggers import (
    BarcodeReader,
    MotionDetector,
    RuleError,
    RuleSetWatcher,
    SignalFrame,
    WeightTracker,
    build_rule_set,
    compile_rule,
    load_rule_set,
    parse_rule,
)
from edge_agent.triggers.signals import BarcodeHit
from tests.edge_agent.conftest import EAN_A, EAN_B, scene


def fired(rule: str, **signals) -> tuple[bool, object]:
    pred, _, _ = compile_rule(rule)
    return pred(SignalFrame(**signals))


def test_parse_canonical_forms() -> None:
    assert str(parse_rule(" all( motion ,barcode ) ")) == "all(motion, barcode)"
    assert str(parse_rule('any(low_confidence(0.5), campaign("sku:1234"))')) == \
        'any(low_confidence(0.5), campaign("sku:1234"))'
    assert str(parse_rule("weight_change(50)")) == "weight_change(50)"
    _, sigs, _ = compile_rule("all(motion, barcode, weight_change(20))")
    assert sigs == {"motion", "barcode", "weight"}


@pytest.mark.parametrize("rule, pos, words", [
    ("all(motion, barcod)", 12, "unknown trigger 'barcod'"),
    ("all(motion", 10, "expected ')'"),
    ("motion)", 6, "unexpected ')'"),
    ("any(motion,, barcode)", 11, "expected a predicate"),
    ("__import__('os').system('x')", 16, "unexpected character '.'"),
    ("__import__('os')", 0, "unknown trigger '__import__'"),
    ("motion; barcode", 6, "unexpected character ';'"),
    ("low_confidence('high')", 0, "must be a number"),
    ("low_confidence(2)", 0, "threshold must be in (0, 1]"),
    ("campaign(\"promo\")", 0, "campaign selector"),
    ("campaign()", 0, "needs an argument 'selector'"),
    ("not(motion, barcode)", 0, "exactly one"),
    ("all()", 0, "at least one"),
    ("", 0, "empty rule"),
    ("all(" * 40 + "motion" + ")" * 40, 68, "nested deeper"),
])
def test_bad_rules_name_the_position(rule: str, pos: int, words: str) -> None:
    with pytest.raises(RuleError) as e:
        compile_rule(rule)
    assert e.value.pos == pos
    assert words in str(e.value)
    assert f"position {pos}" in str(e.value)


def test_predicates() -> None:
    assert fired("motion", motion=7.0) == (True, 7.0)
    assert fired("motion(10)", motion=7.0)[0] is False
    assert fired("barcode", barcodes=[BarcodeHit("EAN13", EAN_A)]) == (True, EAN_A)
    assert fired("barcode")[0] is False
    assert fired("low_confidence(0.5)", confidence=0.3) == (True, 0.3)
    assert fired("low_confidence(0.5)", confidence=0.8)[0] is False
    assert fired("weight_change(50)", weight_delta_g=-80.0) == (True, -80.0)
    assert fired("weight_change(50)", weight_delta_g=20.0)[0] is False
    assert fired("disagreement", prediction=EAN_A, barcodes=[BarcodeHit("EAN13", EAN_B)])[0]
    assert not fired("disagreement", prediction=EAN_A, barcodes=[BarcodeHit("EAN13", EAN_A)])[0]
    assert not fired("disagreement", prediction=None, barcodes=[BarcodeHit("EAN13", EAN_A)])[0]
    # UPC-A read of an EAN-13 with a leading zero is the same product
    assert not fired("disagreement", prediction="0012345678905",
                     barcodes=[BarcodeHit("UPCA", "012345678905")])[0]
    assert fired('campaign("sku:1234")', prediction="1234") == (True, "sku:1234")
    assert fired('campaign("aisle:A03")', aisle="A03")[0]
    assert fired('campaign("store:B")', store="A")[0] is False
    assert fired("all(motion, barcode)", motion=9.0, barcodes=[BarcodeHit("EAN13", EAN_A)])[0]
    assert not fired("all(motion, barcode)", motion=9.0)[0]
    assert fired('any(low_confidence(0.5), campaign("sku:1234"))', confidence=0.9,
                 prediction="1234")[0]
    assert fired("not(motion)", motion=1.0)[0]


def test_rule_set_priority_and_validation() -> None:
    rs = build_rule_set("v7", [{"name": "scan", "when": "all(motion, barcode)", "priority": 3},
                               {"name": "unsure", "when": "low_confidence(0.4)", "priority": 1}])
    assert rs.version == "v7" and rs.signals == {"motion", "barcode"}
    fired_rules = rs.evaluate(SignalFrame(confidence=0.2, motion=9.0,
                                          barcodes=[BarcodeHit("EAN13", EAN_A)]))
    assert [(r.name, r.priority) for r, _ in fired_rules] == [("scan", 3), ("unsure", 1)]
    with pytest.raises(ValueError, match="duplicate rule name"):
        build_rule_set("v", [{"name": "a", "when": "motion"}, {"name": "a", "when": "barcode"}])
    with pytest.raises(ValueError, match="priority"):
        build_rule_set("v", [{"name": "a", "when": "motion", "priority": 12}])
    with pytest.raises(ValueError, match="version"):
        build_rule_set("", {"a": "motion"})
    with pytest.raises(ValueError, match="at least one rule"):
        build_rule_set("v", {})


def test_hot_reload_takes_new_versions_and_keeps_old_on_error(tmp_path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('version = "1"\n[[rules]]\nname = "m"\nwhen = "motion"\n')
    w = RuleSetWatcher(path)
    assert w.current.version == "1" and w.poll() is None

    def write(text: str) -> None:
        path.write_text(text)
        st = os.stat(path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # coarse mtime clocks

    write('version = "2"\n[[rules]]\nname = "b"\nwhen = "barcode"\npriority = 2\n')
    new = w.poll()
    assert new is not None and new.version == "2" and new.rules[0].name == "b"
    write('version = "3"\n[[rules]]\nname = "x"\nwhen = "all(motion, sparkles)"\n')
    assert w.poll() is None
    assert "unknown trigger 'sparkles'" in (w.last_error or "")
    assert w.current.version == "2"
    with pytest.raises(ValueError, match="not valid TOML"):
        load_rule_set(path.with_name("broken.toml")) if path.with_name("broken.toml").write_text(
            "version = ") else None


def test_motion_detector_separates_noise_from_movement() -> None:
    md = MotionDetector()
    still = [md.update(scene(i)) for i in range(5)][1:]
    md = MotionDetector()
    moving = [md.update(scene(i, moving=True)) for i in range(5)][1:]
    assert max(still) < 3.0
    assert min(moving) > 8.0


def test_barcode_reader_reads_retail_codes_only() -> None:
    import zxingcpp

    reader = BarcodeReader()
    hits = reader.read(scene(0, barcode=EAN_A))
    assert [(h.format, h.text) for h in hits] == [("EAN13", EAN_A)]
    assert reader.read(scene(0)) == []
    qr = np.asarray(zxingcpp.write_barcode(zxingcpp.BarcodeFormat.QRCode, "hello", 120, 120))
    img = scene(0)
    img[10:10 + qr.shape[0], 10:10 + qr.shape[1]] = qr.reshape(qr.shape[0], qr.shape[1], 1)
    assert reader.read(img) == []  # not a retail format: ignored


def test_weight_tracker_measures_change_over_window() -> None:
    w = WeightTracker(window_s=1.0)
    deltas = [w.update(i * 0.1, 1000.0 + (450.0 if i >= 10 else 0.0)) for i in range(30)]
    assert deltas[5] == 0.0
    assert deltas[12] == pytest.approx(450.0)
    assert deltas[29] == pytest.approx(0.0)  # settled: the window no longer spans the step
    assert w.update(3.1, None) is None


def test_low_confidence_per_insertion_fires_only_where_an_insertion_closes() -> None:
    from edge_agent.triggers.signals import SignalFrame

    pred, _, canon = compile_rule('low_confidence(0.5, "insertion")')
    assert canon == 'low_confidence(0.5, "insertion")'
    assert pred(SignalFrame(confidence=0.01)) == (False, None)  # a doubtful frame alone: nothing
    assert pred(SignalFrame(confidence=0.9, insertion_label="111", insertion_confidence=0.3)) == (True, 0.3)
    assert pred(SignalFrame(confidence=0.1, insertion_label="111", insertion_confidence=0.7))[0] is False
    frame_scope, _, _ = compile_rule('low_confidence(0.5, "frame")')
    assert frame_scope(SignalFrame(confidence=0.3)) == (True, 0.3)
    with pytest.raises(RuleError, match='scope must be "frame" or "insertion"'):
        compile_rule('low_confidence(0.5, "clip")')
    values = SignalFrame(insertion_label="111", insertion_confidence=0.31234).values()
    assert values["insertion_label"] == "111" and values["insertion_confidence"] == 0.3123


def test_weight_steps_are_judged_once_each_by_whether_the_model_saw_a_product_around_them() -> None:
    from edge_agent.triggers.signals import WeightStepWatch, WeightTracker

    def run(saw) -> tuple[int, int]:  # noqa: ANN001 - saw(t) -> the model named a product
        watch, weight, total = WeightStepWatch(50.0, window_s=2.0), WeightTracker(), [0, 0]
        for k in range(120):  # 12 s at 10 fps; items land at 3 s and 8 s (400 g each)
            t = k / 10
            grams = 400.0 * ((t >= 3.0) + (t >= 8.0))
            judged, bad = watch.update(t, weight.update(t, grams), saw(t))
            total[0] += judged
            total[1] += bad
        return total[0], total[1]

    # the item in hand before it lands (and "empty" once it lies in the basket): both steps seen
    assert run(lambda t: 2.0 <= t < 3.0 or 7.2 <= t < 8.0) == (2, 0)
    assert run(lambda t: False) == (2, 2)  # blind: each step counted once, not once a frame
    assert run(lambda t: 2.5 <= t < 3.0) == (2, 1)  # missed the second item
    assert run(lambda t: 9.5 <= t < 9.7) == (2, 1)  # seen just after the step (an item taken out)
