"""White balance (edge_agent/whitebalance.py): the simulator's store light is a per-channel gain,
gray world undoes it; the device and the Learner apply the same function to the same pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_agent.whitebalance import METHODS, apply_gains, gains, white_balance


def _scene(seed: int = 0) -> np.ndarray:
    """A grey basket with a few coloured packs (the packs are a small part of the frame)."""
    rng = np.random.default_rng(seed)
    img = np.full((240, 320, 3), 128, np.uint8) + rng.integers(-20, 20, (240, 320, 1)).astype(np.uint8)
    for _ in range(3):
        y, x = rng.integers(0, 180), rng.integers(0, 260)
        img[y:y + 40, x:x + 50] = rng.integers(30, 220, 3)
    return img


@pytest.mark.parametrize("store", ["A", "B", "C"])
def test_gray_world_removes_a_store_colour_cast(store):
    from flywheel.sim.conditions import apply_lut, light_lut
    from flywheel.sim.stores import production_profile

    img = _scene()
    prof = production_profile(store)
    cast = apply_lut(img, light_lut(0.0, 1.0, prof.cast_gains))
    before = np.abs(cast.astype(int) - img).mean()
    fixed = white_balance(cast, "gray_world_exposure")
    ref = white_balance(img, "gray_world_exposure")
    after = np.abs(fixed.astype(int) - ref).mean()
    assert after < 0.1 * before, (before, after)  # the cast is gone up to rounding and clipping
    # gray world alone: channel means equal after balancing, brightness kept
    m = white_balance(cast, "gray_world").reshape(-1, 3).mean(0)
    assert np.ptp(m) < 2.0 and abs(m.mean() - cast.mean()) < 3.0


def test_exposure_variant_normalises_brightness_and_none_is_identity():
    img = _scene(1)
    dim = (img * 0.4).astype(np.uint8)
    a, b = white_balance(img, "gray_world_exposure"), white_balance(dim, "gray_world_exposure")
    assert abs(a.mean() - b.mean()) < 3.0
    assert white_balance(img, "none") is img
    np.testing.assert_array_equal(gains(img, "none"), np.ones(3, np.float32))


def test_degenerate_frames_and_bad_method():
    black = np.zeros((48, 64, 3), np.uint8)
    g = gains(black, "gray_world_exposure")
    assert np.isfinite(g).all() and g.max() <= 4.0  # a black frame is not blown up without bound
    assert apply_gains(np.full((2, 2, 3), 250, np.uint8), np.full(3, 2.0, np.float32)).max() == 255
    with pytest.raises(ValueError, match="white balance"):
        gains(black, "auto")
    assert set(METHODS) == {"none", "gray_world", "gray_world_exposure"}


def test_device_preprocess_is_the_learners(tmp_path: Path):
    """The slot's model.json names the balance; the device's tensor equals the Learner's exactly."""
    from edge_agent.model import DeviceModel
    from flywheel.learner.preprocess import to_tensor
    from tests.edge_agent.test_model import export_torch_classifier

    slot = tmp_path / "slot"
    export_torch_classifier(slot, "m-wb", 0)
    meta = json.loads((slot / "model.json").read_text())
    img = _scene(2)
    # an old slot without the field: no balance (what shipped before keeps its pixels)
    old = DeviceModel(slot)
    assert old.white_balance == "none"
    (slot / "model.json").write_text(json.dumps({**meta, "input_size": [48, 48],
                                                 "white_balance": "gray_world"}))
    dev = DeviceModel(slot)
    assert dev.white_balance == "gray_world"
    np.testing.assert_array_equal(dev.preprocess(img)[0], to_tensor(img, 48, "gray_world"))
    assert not np.array_equal(dev.preprocess(img)[0], to_tensor(img, 48))
