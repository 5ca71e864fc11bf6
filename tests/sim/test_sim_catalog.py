from __future__ import annotations

import numpy as np
import zxingcpp

from flywheel.sim.catalog import build_catalog, ean13_check_digit, is_valid_ean13, make_ean13
from flywheel.sim.packaging import render_back, render_front


def test_ean13_check_digit_known_codes():
    assert ean13_check_digit("400638133393") == 1  # 4006381333931, a real EAN-13
    assert ean13_check_digit("590123412345") == 7  # 5901234123457, the GS1 example
    assert is_valid_ean13("4006381333931")
    assert not is_valid_ean13("4006381333932")
    assert not is_valid_ean13("400638133393")


def test_catalog_is_seeded_valid_and_split_by_store():
    cat = build_catalog(seed=0)
    assert len(cat) == 30
    assert cat.products == build_catalog(seed=0).products
    assert cat.products != build_catalog(seed=1).products
    eans = [p.ean for p in cat]
    assert len(set(eans)) == len(eans)
    assert all(is_valid_ean13(e) for e in eans)
    assert make_ean13(eans[0][:12]) == eans[0]
    assert len(cat.core) == 21
    for store in ("A", "B", "C"):
        special = cat.store_specific(store)
        assert len(special) == 3
        assert {p.ean for p in special}.isdisjoint({p.ean for p in cat.available_in("manual")})
    assert {p.shape for p in cat} == {"box", "can", "bottle", "bag"}
    assert all(p.weight_g > 50 for p in cat)


def test_rendered_back_barcode_decodes_to_the_ean():
    cat = build_catalog(seed=0)
    for p in cat:
        back = render_back(p)
        rgb = np.ascontiguousarray(back.rgba[..., :3])
        reads = zxingcpp.read_barcodes(rgb, formats=zxingcpp.BarcodeFormat.EAN13)
        assert [r.text for r in reads] == [p.ean], p
        # the front carries no barcode
        front = np.ascontiguousarray(render_front(p).rgba[..., :3])
        assert zxingcpp.read_barcodes(front, formats=zxingcpp.BarcodeFormat.EAN13) == []
