from __future__ import annotations

import dataclasses

import numpy as np
import zxingcpp

from flywheel.sim.session import WEIGHT_NOISE_G, DeviceFrame


def test_same_seed_same_frames_different_seed_different(world):
    a = world.session("B", 7).frames()
    b = world.session("B", 7).frames()
    c = world.session("B", 8).frames()
    assert len(a) == len(b)
    assert all(np.array_equal(x.device.image, y.device.image) for x, y in zip(a, b, strict=True))
    assert [x.truth for x in a] == [y.truth for y in b]
    assert [(x.device.weight_g, x.device.location) for x in a] == [
        (y.device.weight_g, y.device.location) for y in b
    ]
    assert a[0].session_id != c[0].session_id
    n = min(len(a), len(c))
    assert any(not np.array_equal(x.device.image, y.device.image) for x, y in zip(a[:n], c[:n], strict=True))


def test_device_view_is_separate_from_truth(world):
    fr = next(iter(world.session("A", 1)))
    assert [f.name for f in dataclasses.fields(DeviceFrame)] == ["image", "t", "weight_g", "location"]
    assert fr.device.image.shape == (240, 320, 3) and fr.device.image.dtype == np.uint8
    assert not hasattr(fr.device, "sku")


def test_weight_steps_by_item_weight_at_insertions(world):
    for store, seed in (("manual", 3), ("A", 3), ("C", 4)):
        frames = world.session(store, seed).frames()
        steps = 0
        for prev, cur in zip(frames, frames[1:], strict=False):
            added = set(cur.truth.cart_skus) - set(prev.truth.cart_skus)
            if len(cur.truth.cart_skus) > len(prev.truth.cart_skus):
                steps += 1
                (ean,) = added or {cur.truth.cart_skus[-1]}
                w = world.catalog.by_ean(ean).weight_g
                delta = cur.device.weight_g - prev.device.weight_g
                assert abs(delta - w) < 6 * WEIGHT_NOISE_G, (store, delta, w)
                assert cur.truth.phase == "retract"
            else:
                assert abs(cur.device.weight_g - prev.device.weight_g) < 8 * WEIGHT_NOISE_G
        assert steps >= 2


def test_idle_frames_are_empty_without_hand_and_location_moves(world):
    frames = world.session("A", 5).frames()
    idle = [f for f in frames if f.truth.phase == "idle"]
    assert idle and all(f.truth.is_empty and f.truth.hand_box is None for f in idle)
    assert all(f.truth.sku is None and f.truth.item_box is None for f in idle)
    assert frames[0].truth.cart_skus == () or frames[0].truth.cart_weight_g > 0
    moving = [f for f in frames if f.truth.phase in ("approach", "hold")]
    assert moving and all(not f.truth.is_empty and f.truth.item_box for f in moving)
    # while held up the hand is in view; early approach frames may show the item leading it
    assert all(f.truth.hand_box is not None for f in moving if f.truth.phase == "hold")
    retract = [f for f in frames if f.truth.phase == "retract"]
    assert retract and all(f.truth.is_empty and f.truth.sku is None for f in retract)
    positions = [f.device.location.position_m for f in idle]
    assert len(set(positions)) > len(idle) // 2
    aisles = {f.device.location.aisle for f in frames}
    assert aisles <= set(world.profiles["A"].aisles.values())
    ts = [f.device.t for f in frames]
    assert ts[1] - ts[0] == 0.1 and ts == sorted(ts)


def test_session_starts_with_an_empty_basket_in_the_lab(world):
    frames = world.session("manual", 2).frames()
    assert frames[0].truth.phase == "idle" and frames[0].truth.cart_skus == ()
    assert abs(frames[0].device.weight_g) < 5 * WEIGHT_NOISE_G


def test_barcode_readable_only_in_some_poses(world):
    """Lab frames: the barcode decodes exactly when truth says it is in view; fronts never."""
    in_view = decoded = front_reads = 0
    for seed in range(4):
        for f in world.session("manual", seed):
            if f.truth.phase != "hold":
                continue
            reads = zxingcpp.read_barcodes(f.device.image, formats=zxingcpp.BarcodeFormat.EAN13)
            texts = {r.text for r in reads}
            if f.truth.barcode_in_view:
                in_view += 1
                decoded += f.truth.sku in texts
            elif f.truth.face == "front":
                front_reads += f.truth.sku in texts
    assert in_view >= 10
    assert decoded / in_view >= 0.9
    assert front_reads == 0


def test_production_barcodes_are_harder_to_read(world):
    rates = {}
    for store in ("manual", "C"):
        n = ok = 0
        for seed in range(6):
            for f in world.session(store, seed):
                if f.truth.barcode_in_view:
                    n += 1
                    reads = zxingcpp.read_barcodes(
                        f.device.image, formats=zxingcpp.BarcodeFormat.EAN13
                    )
                    ok += any(r.text == f.truth.sku for r in reads)
        rates[store] = ok / max(1, n)
    assert rates["manual"] > rates["C"] + 0.3, rates
