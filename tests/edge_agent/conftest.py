"""Shared pieces for the edge agent tests: a model slot, synthetic scenes with real barcodes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge_agent.agent import Agent
from edge_agent.capture.spool import Spool
from edge_agent.config import CaptureConfig, UploadConfig
from edge_agent.model import DeviceModel
from edge_agent.sources import Frame
from edge_agent.triggers import build_rule_set

EAN_A = "4006381333931"
EAN_B = "5012345678900"
LABELS = ["none", EAN_A, EAN_B]
W, H = 320, 240


def barcode_patch(ean: str, width: int = 190, height: int = 70) -> np.ndarray:
    import zxingcpp

    img = np.asarray(zxingcpp.write_barcode(zxingcpp.BarcodeFormat.EAN13, ean, width, height))
    return np.repeat(img[..., None], 3, axis=2)


def scene(i: int, *, moving: bool = False, barcode: str | None = None, seed: int = 0) -> np.ndarray:
    """A grey basket with a little sensor noise; optionally a box moving across and a barcode."""
    rng = np.random.default_rng(seed * 100_000 + i)
    img = np.full((H, W, 3), 90, np.uint8)
    img += rng.integers(0, 4, img.shape, dtype=np.uint8)
    if moving:
        x = (i * 23) % (W - 60)
        img[40:200, x:x + 80] = (250, 240, 230)
    if barcode:
        p = barcode_patch(barcode)
        img[120:120 + p.shape[0], 40:40 + p.shape[1]] = p
    return img


def scripted_frames(n: int, events: dict[range, dict] | None = None, fps: float = 15.0
                    ) -> Iterator[Frame]:
    """Frames with events: {range(10, 20): {"moving": True, "barcode": EAN_A, "weight": 500}}."""
    weight = 1000.0
    for i in range(n):
        kw: dict = {}
        for r, ev in (events or {}).items():
            if i in r:
                kw = ev
        if "weight" in kw:
            weight = 1000.0 + kw["weight"]
        img = scene(i, moving=kw.get("moving", False), barcode=kw.get("barcode"))
        yield Frame(img, i / fps, weight_g=weight, location=("A03", 1.5))


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    from flywheel.fleet.bootstrap import install_model_slot

    return install_model_slot(tmp_path / "model", LABELS, version="test-model-1",
                              background=scene(0))


@pytest.fixture
def make_agent(tmp_path: Path, model_dir: Path):
    made: list[Agent] = []

    def make(lake, *, rules=None, spool_dir: Path | None = None, cap_bytes: int = 10**9,
             policy: str = "oldest_first", min_free_bytes: int = 0, disk_free=None,
             capture: CaptureConfig | None = None, upload: UploadConfig | None = None,
             device_id: str = "cart-test-01", start: bool = True, **kw) -> Agent:
        rules = rules or build_rule_set("t1", {"move": "motion(8)"})
        spool = Spool(spool_dir or tmp_path / f"spool-{device_id}", cap_bytes=cap_bytes,
                      min_free_bytes=min_free_bytes, policy=policy, disk_free=disk_free)
        agent = Agent(device_id=device_id, store_id="A", model=DeviceModel(model_dir), rules=rules,
                      spool=spool, lake=lake,
                      capture=capture or capture_config(pre_roll_s=0.3, post_roll_s=0.3,
                                                        max_clip_s=3.0),
                      upload=upload or UploadConfig(backoff_base_s=0.05, backoff_cap_s=0.5),
                      status_interval_s=kw.pop("status_interval_s", 3600.0), **kw)
        made.append(agent)
        return agent.start() if start else agent

    yield make
    for a in made:
        if a._started and not a._stop.is_set():
            a.close()


def lake_clips(lake) -> tuple[list[str], list[str]]:
    keys = [o.key for o in lake.list("landing/clips")]
    return [k for k in keys if k.endswith(".mp4")], [k for k in keys if k.endswith(".json")]


def capture_config(**kw) -> CaptureConfig:
    """Capture settings for in-process agent tests: encode on a thread with libx264, no probing."""
    return CaptureConfig(**{"encoders": [], "isolation": "thread", **kw})
