"""benchmarks/turn_variant.py's overrides: TrainConfig and RoiConfig fields from `--set`, typed as
JSON where they parse, refused when malformed (before anything trains)."""

from __future__ import annotations

import pytest

from benchmarks.turn_variant import parse_overrides


def test_overrides_split_into_train_and_roi_fields_typed_as_json():
    top, roi = parse_overrides(["epochs=15", "roi.det_refresh_epochs=4", "roi.empty_rule=cls",
                                "roi.jitter_scale=[0.9, 1.2]", "model_yaml=yolov8s-cls.yaml"])
    assert top == {"epochs": 15, "model_yaml": "yolov8s-cls.yaml"}
    assert roi == {"det_refresh_epochs": 4, "empty_rule": "cls", "jitter_scale": (0.9, 1.2)}


@pytest.mark.parametrize("bad", ["epochs", "=3", ""])
def test_a_malformed_override_is_refused(bad):
    with pytest.raises(ValueError, match="expected FIELD=VALUE"):
        parse_overrides([bad])
