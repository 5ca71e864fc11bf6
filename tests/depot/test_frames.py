"""Per-frame work of the ingest: measures from the decoder's luma plane, the JPEG and thumbnail in the
frame's row, and thumbnails materialised on demand for search results (local lake and SeaweedFS)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flywheel.depot.config import DepotConfig
from flywheel.depot.embed import DescriptorEncoder
from flywheel.depot.frames import decode_clip, decode_sampled, from_image_bytes, measures, to_jpeg
from flywheel.depot.index import index_day
from flywheel.depot.ingest import ingest_day
from flywheel.depot.search import SearchQuery, search
from tests.support.clips import build_clip, land_clip

DAY = "2026-11-24"


def test_luma_plane_measures_match_the_rgb_picture() -> None:
    c = build_clip(seed=3, n_frames=16, width=320, height=240)
    wanted = {0, 7, 15}
    sampled, n = decode_sampled(c.clip_bytes, wanted)
    rgb, n2 = decode_clip(c.clip_bytes, wanted)
    assert n == n2 == 16 and [f.index for f in sampled] == sorted(wanted)
    for f in sampled:
        assert np.array_equal(f.rgb, rgb[f.index])
        blur, bright = measures(f.rgb)  # the same measures from the RGB frame
        # the video's limited-range luma, scaled to full range, reads like the picture's luma
        assert f.brightness == pytest.approx(bright, abs=3.0)
        assert f.blur == pytest.approx(blur, rel=0.25)


def test_blur_measure_ranks_sharp_above_blurred() -> None:
    rng = np.random.default_rng(0)
    sharp = np.repeat(rng.integers(0, 256, (120, 160, 1), dtype=np.uint8), 3, axis=2)
    import cv2

    soft = cv2.GaussianBlur(sharp, (9, 9), 3)
    assert measures(sharp)[0] > 10 * measures(soft)[0]
    assert measures(np.full((120, 160, 3), 200, np.uint8)) == (0.0, pytest.approx(200.0, abs=0.5))


def test_jpeg_and_thumbnail_keep_the_picture() -> None:
    clip = build_clip(seed=1, n_frames=12, width=320, height=240)
    frame = decode_clip(clip.clip_bytes, {11})[0][11]
    full = from_image_bytes(to_jpeg(frame, 90))
    thumb = from_image_bytes(to_jpeg(frame, 85, 160))
    assert full.shape == frame.shape and np.abs(full.astype(np.int16) - frame).mean() < 4
    assert thumb.shape == (120, 160, 3)
    # channels are not swapped (OpenCV works in BGR): the thumbnail's mean colour is the frame's
    assert np.allclose(thumb.reshape(-1, 3).mean(0), frame.reshape(-1, 3).mean(0), atol=4)


@pytest.mark.parametrize("backend", ["local", pytest.param("s3", marks=pytest.mark.integration)])
def test_search_materialises_only_the_thumbnails_it_returns(backend, request) -> None:
    lake = request.getfixturevalue("s3_lake" if backend == "s3" else "local_lake")
    clips = [land_clip(lake, seed=i, product=i, device_id=f"cart-{i}") for i in range(2)]
    ingest_day(lake, DAY, DepotConfig(frame_every=8), encoder=DescriptorEncoder())
    index_day(lake, DAY, DescriptorEncoder())
    assert list(lake.list("depot/thumbs/")) == []  # ingest writes no object per frame
    hits = search(lake, SearchQuery(device="cart-1", limit=2))
    assert len(hits) == 2 and {h.clip_id for h in hits} == {clips[1].clip_id}
    stored = sorted(i.key for i in lake.list("depot/thumbs/"))
    assert len(stored) == 2  # the results' thumbnails, nothing else
    for h in hits:
        data = (open(h.thumbnail, "rb").read() if lake.is_local
                else lake.get(h.thumbnail.removeprefix(lake.uri + "/")))
        assert data == h.thumbnail_jpeg and from_image_bytes(data).shape == (120, 160, 3)
        json.dumps(h.as_dict())  # JSON-friendly: the path, not the bytes
        assert "thumbnail_jpeg" not in h.as_dict()
    again = search(lake, SearchQuery(device="cart-1", limit=2))  # already there: same paths
    assert [h.thumbnail for h in again] == [h.thumbnail for h in hits]
    assert sorted(i.key for i in lake.list("depot/thumbs/")) == stored
