"""The VLM labeler's real loading and inference path on a tiny random CLIP saved with transformers."""

from __future__ import annotations

import numpy as np
import pytest

from flywheel.depot.frames import to_jpeg
from flywheel.label.prelabelers.base import FrameInput, Product
from flywheel.label.prelabelers.vlm import VlmLabeler, prompt
from tests.label.tiny_clip import build_tiny_clip

PRODUCTS = [Product("4006381333931", "Still Water", "Tamarind", "water", 500.0),
            Product("5012345678900", "Earl Grey", "Okapi", "tea", 100.0),
            Product("8712345678906", None, None, None, 80.0)]


@pytest.mark.slow
def test_tiny_clip_loads_and_labels(tmp_path) -> None:
    ckpt = build_tiny_clip(tmp_path / "clip")
    vlm = VlmLabeler(ckpt, PRODUCTS)
    assert vlm.load_error is None and vlm.version.startswith("clip-")
    rng = np.random.default_rng(0)
    pixels = [(rng.random((120, 160, 3)) * 255).astype(np.uint8) for _ in range(3)]
    frames = [FrameInput(f"f{i}", "c", "d", i, 0.0, to_jpeg(px)) for i, px in enumerate(pixels)]
    frames.append(FrameInput("bad", "c", "d", 3, 0.0, b"garbage"))
    votes = vlm.label(frames)
    assert len(votes) == 4 and votes[3].reason == "unreadable_jpeg"
    for v in votes[:3]:
        assert v.label in {p.ean for p in PRODUCTS} and 0.0 < v.confidence <= 1.0
        assert "zero-shot" in v.evidence
    assert prompt(PRODUCTS[2]) == "a photo of 8712345678906, a grocery product"  # no name: the EAN
    # the same checkpoint, corrupted: the labeler abstains instead of failing the run
    (ckpt / "model.safetensors").write_bytes(b"corrupt")
    broken = VlmLabeler(ckpt, PRODUCTS)
    assert broken.model is None and "did not load" in broken.load_error
    assert {v.reason for v in broken.label(frames)} == {"no_model"}
