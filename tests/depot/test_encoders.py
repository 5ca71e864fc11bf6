"""Encoders: the deterministic fallback descriptor, the production model's penultimate layer (from
the registry), and a transformers CLIP with text search, each indexed and searched for real."""

from __future__ import annotations

import numpy as np
import pytest

from flywheel.depot.embed import DescriptorEncoder, encoder_id, load_encoder, resolve_spec
from flywheel.depot.index import index_day
from flywheel.depot.ingest import ingest_day
from flywheel.depot.search import SearchQuery, search
from resources.encoder import EncoderResource
from tests.depot.tiny_models import build_tiny_clip, register_tiny_production_model
from tests.support.clips import land_clip, render_frames

DAY = "2026-11-24"


def test_descriptor_is_deterministic_normalised_and_discriminative() -> None:
    enc = DescriptorEncoder()
    a = render_frames(3, 160, 120, product=0, seed=1)
    b = render_frames(3, 160, 120, product=2, seed=1)
    va, vb = enc.encode_images(a), enc.encode_images(b)
    assert va.shape == (3, 256) and va.dtype == np.float32
    assert np.allclose(np.linalg.norm(va, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(va, DescriptorEncoder().encode_images(a))  # same pixels, same vector
    same = float(va[1] @ enc.encode_images(render_frames(3, 160, 120, product=0, seed=2))[1])
    other = float(va[1] @ vb[1])
    assert same > other
    with pytest.raises(Exception, match="text"):
        enc.encode_text(["red"])


def test_auto_encoder_falls_back_to_the_descriptor_without_a_registry(local_lake) -> None:
    assert resolve_spec(local_lake) == {"kind": "descriptor", "version": 1}
    assert encoder_id(resolve_spec(local_lake)) == "descriptor_v1"


@pytest.mark.slow
def test_production_model_penultimate_layer_is_the_default_when_registered(local_lake, tmp_path) -> None:
    model_id = register_tiny_production_model(local_lake, tmp_path)
    spec = EncoderResource().spec(local_lake)
    assert spec == {"kind": "production_model", "model_id": model_id, "imgsz": 64}
    enc = load_encoder(spec, local_lake)
    v = enc.encode_images(render_frames(2, 160, 120, product=1, seed=0))
    assert v.shape == (2, enc.dim) and enc.dim == 1280  # the classifier head's input
    clips = [land_clip(local_lake, seed=i, product=i % 2, device_id=f"cart-{i}") for i in range(4)]
    ingest_day(local_lake, DAY)
    report = index_day(local_lake, DAY, enc)
    assert report.table == f"frames_model_{model_id.replace('-', '_')}" and report.rows_day > 0
    hits = search(local_lake, SearchQuery(like_clip=clips[0].clip_id, limit=5))
    assert hits and clips[0].clip_id not in {h.clip_id for h in hits}


@pytest.mark.slow
def test_clip_encoder_enables_text_and_image_search(local_lake, tmp_path) -> None:
    path = build_tiny_clip(tmp_path / "tiny")
    res = EncoderResource(kind="hf_clip", hf_path=str(path))
    enc = res.encoder(local_lake)
    assert enc.supports_text and enc.dim == 16
    t = enc.encode_text(["red box", "blue box"])
    assert t.shape == (2, 16) and not np.allclose(t[0], t[1])
    land_clip(local_lake, seed=1, product=0)
    land_clip(local_lake, seed=2, product=2, device_id="cart-2")
    ingest_day(local_lake, DAY)
    index_day(local_lake, DAY, enc)
    hits = search(local_lake, SearchQuery(text="red box", limit=4))
    assert len(hits) == 4 and all(h.distance is not None for h in hits)
    hits_dev = search(local_lake, SearchQuery(text="red box", device="cart-2", limit=50))
    assert hits_dev and {h.device_id for h in hits_dev} == {"cart-2"}
