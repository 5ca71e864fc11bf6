"""The empty-background filter on a hand-built clip: idle basket frames, an item held up in the
second before its weight step, the hand leaving, the item lying in the basket afterwards."""

from __future__ import annotations

import numpy as np

from flywheel.depot.frames import to_jpeg
from flywheel.label.background import FilterFrame, empty_score, filter_frames

STEP_T = 2.5  # the item lands: the weight steps here


def _scene(t: float, rng: np.random.Generator) -> np.ndarray:
    img = np.full((120, 160, 3), (70, 90, 110), np.uint8)
    img[::12] = (40, 60, 80)  # the basket grid
    img[:, ::12] = (40, 60, 80)
    if 1.6 <= t < STEP_T:  # held up, then dropping
        img[20:80, 40:100] = (200, 40, 40)
    if t >= STEP_T:  # lying in the basket
        img[90:110, 60:80] = (200, 40, 40)
    if STEP_T <= t < STEP_T + 0.3:  # the empty hand leaves
        img[0:25, 130:160] = (200, 160, 130)
    noise = rng.normal(0, 2, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def test_keeps_the_item_drops_idle_retract_and_lying() -> None:
    rng = np.random.default_rng(0)
    times = [round(0.1 * k, 1) for k in range(0, 45, 2)]  # every other frame of 4.5 s at 10 fps
    frames = [FilterFrame(f"c-{i:06d}", "c", "cart-1", i, t, to_jpeg(_scene(t, rng)), barcode_read=(t == 0.4))
              for i, t in enumerate(times)]
    frames.append(FilterFrame("c-bad", "c", "cart-1", 99, 4.6, b"not a jpeg"))
    res = filter_frames(frames, {"c": [STEP_T]})
    by_t = {f.t_s: (k, r) for f, k, r in zip(frames, res.kept, res.reason, strict=True)}
    for t, (kept, reason) in by_t.items():
        if t == 4.6:
            assert kept and reason == "unreadable_jpeg"
        elif t == 0.4:
            assert kept and reason == "barcode_read"  # a barcode in view: never dropped
        elif 1.6 <= t < STEP_T:
            assert kept, (t, reason)
        else:
            assert not kept, (t, reason)
    assert res.unreadable == 1 and 16.0 <= res.device_threshold["cart-1"] <= 40.0
    assert all(0.0 <= s <= 1.0 for s in res.empty_score)
    # by-products for the detector: the held item's box (60x60 px at 40, 20 of 160x120), in 0..1;
    # none on dropped frames; clean empties are idle frames only (before the insertion, and the
    # basket with the item lying in it), never the held item or the hand leaving
    for f, kept, box, clean in zip(frames, res.kept, res.fg_box, res.clean_empty, strict=True):
        if kept and 1.6 <= f.t_s < STEP_T:
            held = [40 / 160, 20 / 120, 100 / 160, 80 / 120]
            assert box is not None and np.allclose(box, held, atol=0.03), box
        if not kept:
            assert box is None
        assert not clean or (not kept and not 1.6 <= f.t_s < STEP_T + 0.4), (f.t_s, clean)
    assert sum(res.clean_empty) >= 6


def test_empty_score_is_one_half_at_the_threshold() -> None:
    assert empty_score(0.0, 0.04) == 1.0 and empty_score(0.04, 0.04) == 0.5 and empty_score(0.4, 0.04) < 0.01
