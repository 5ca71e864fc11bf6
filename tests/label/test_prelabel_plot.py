"""The prelabels asset's plot: a real PNG at the set size, not a blank canvas; an empty day still draws."""

from __future__ import annotations

import io

from PIL import Image

from flywheel.label.plots import prelabels_png


def _vote(labeler: str, label: str | None, version: str = "1") -> dict:
    return {"labeler": labeler, "version": version, "label": label, "confidence": 0.9 if label else None,
            "evidence": ""}


def test_prelabels_png_draws_votes_and_confidence() -> None:
    rows = [{"label": "4006381333931", "confidence": 0.5 + i / 40, "disagreement": i % 3 == 0,
             "votes": [_vote("barcode", None), _vote("teacher", "4006381333931", "teacher-2")]}
            for i in range(20)]
    rows.append({"label": None, "confidence": 0.0, "disagreement": False, "votes": [_vote("barcode", None)]})
    img = Image.open(io.BytesIO(prelabels_png(rows, 0.97)))
    assert img.format == "PNG" and img.size == (720, 270)  # 8x3 in at 90 dpi
    # distinct colours: bars, histogram and threshold line were drawn, not a blank canvas
    assert len(img.convert("RGB").getcolors(1 << 16) or []) > 20
    empty = Image.open(io.BytesIO(prelabels_png([], 0.97)))
    assert empty.format == "PNG"
