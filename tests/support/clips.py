"""Test-data builder: writes REAL H.264 clips (PyAV, libx264) and contract-valid sidecars into a lake.

Independent of the edge agent (built in parallel): it produces exactly what the contract says a
device uploads, the clip first and the sidecar last. Frames come from the store simulator's basket
background when it is importable, with a coloured "product" sliding across, so frames differ in
content (search and similarity have something to find) and are fully determined by the seed.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from edge_agent.contract.layout import LAYOUT, arrival_key, clip_key, parse_clip_key, sidecar_key
from edge_agent.contract.schemas import ClipSidecarV1, dump_document, parse_sidecar
from edge_agent.lake import Lake

# Distinct product colours; a clip's product is chosen by `product` so tests can build look-alikes.
PRODUCT_COLOURS = [(220, 40, 40), (40, 180, 60), (40, 80, 220), (230, 200, 30), (200, 60, 200),
                   (30, 200, 200), (250, 130, 20), (120, 70, 30)]
EANS = ["4006381333931", "5012345678900", "8712345678906", "4012345678901", "7612345678904",
        "3012345678907", "9501234567897", "0012345678905"]


def _background(width: int, height: int) -> np.ndarray:
    try:  # the simulator's cart basket, when the sim package is there
        from flywheel.sim.scene import render_basket

        return render_basket(width, height)
    except Exception:  # noqa: BLE001 - any failure: fall back to a plain gradient floor
        y = np.linspace(50, 90, height, dtype=np.float32)[:, None, None]
        return np.broadcast_to(y, (height, width, 3)).astype(np.uint8).copy()


def render_frames(n: int, width: int, height: int, *, product: int, seed: int,
                  dark: bool = False) -> list[np.ndarray]:
    """`n` RGB frames: the basket with a product box sliding in from the left."""
    rng = np.random.default_rng(seed)
    bg = _background(width, height)
    colour = np.array(PRODUCT_COLOURS[product % len(PRODUCT_COLOURS)], np.uint8)
    bw, bh = width // 3, height // 3
    y0 = int(rng.integers(height // 6, height - bh - height // 6))
    frames = []
    for i in range(n):
        f = bg.copy()
        x0 = int((width - bw) * i / max(n - 1, 1))
        f[y0:y0 + bh, x0:x0 + bw] = colour
        f[y0 + bh // 3:y0 + bh // 3 + 4, x0 + 4:x0 + bw - 4] = 255  # a label stripe: some texture
        noise = rng.integers(-6, 7, f.shape, dtype=np.int16)
        f = np.clip(f.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        if dark:
            f = (f // 4).astype(np.uint8)
        frames.append(f)
    return frames


def encode_h264(frames: list[np.ndarray], fps: int, container: str = "mp4", codec: str = "libx264") -> bytes:
    """An MP4 (H.264, yuv420p) in memory, as a device encoder would write it (`container="h264"`:
    a raw Annex B stream; another `codec` for a device that breaks the contract)."""
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


@dataclass(frozen=True)
class LandedClip:
    clip_id: str
    day: str
    store_id: str
    device_id: str
    clip_key: str
    sidecar_key: str
    clip_bytes: bytes
    sidecar: ClipSidecarV1

    @property
    def sidecar_bytes(self) -> bytes:
        return dump_document(self.sidecar)


def build_clip(*, day: str = "2026-11-24", store_id: str = "store-a", device_id: str = "cart-001",
               seed: int = 0, product: int = 0, n_frames: int = 24, fps: int = 8, width: int = 160,
               height: int = 120, model_version: str = "m-0001", dark: bool = False,
               trigger_frames: tuple[int, ...] = (10,), rule: str = "all(motion,barcode)",
               low_confidence: bool = False, layout: int = LAYOUT,
               insertions: list[dict] | None = None) -> LandedClip:
    """A clip and its sidecar, in memory (nothing written yet); `layout` 1 keys it as clips landed
    before the device-first layout were; with `insertions` a ClipSidecarV2."""
    frames = render_frames(n_frames, width, height, product=product, seed=seed, dark=dark)
    data = encode_h264(frames, fps)
    sha = hashlib.sha256(data).hexdigest()
    clip_id = sha[:32]
    ean = EANS[product % len(EANS)]
    started = datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(hours=9, seconds=seed * 37)
    preds = []
    for i in range(n_frames):
        visible = i >= n_frames // 4
        conf = (0.35 if low_confidence else 0.9) if visible else 0.8
        preds.append({"index": i, "t": round(i / fps, 6), "prediction": ean if visible else None,
                      "confidence": conf})
    doc: dict[str, Any] = {
        "schema": "flywheel.clip_sidecar", "schema_version": 1,
        "clip_id": clip_id, "device_id": device_id, "store_id": store_id, "capture_date": day,
        "started_at": started.isoformat(), "model_version": model_version,
        "rule_set_version": "rules-1", "agent_version": "0.1.0", "priority": 5,
        "clip": {"sha256": sha, "size_bytes": len(data), "codec": "h264", "width": width,
                 "height": height, "fps": fps, "frame_count": n_frames,
                 "duration_s": n_frames / fps},
        "triggers": [{"rule": rule, "frame": f, "value": True,
                      "signals": {"motion": 0.7, "barcode": ean}} for f in trigger_frames],
        "barcode_reads": [{"frame": trigger_frames[0], "format": "EAN13", "text": ean}],
        "weight_series": [{"t": round(i / fps, 6), "grams": 1200.0 + (350.0 if i > n_frames // 2 else 0)}
                          for i in range(0, n_frames, 2)],
        "location_series": [{"t": 0.0, "aisle": f"A{product % 5 + 1}", "x_m": 2.0},
                            {"t": round((n_frames - 1) / fps, 6), "aisle": f"A{product % 5 + 1}",
                             "x_m": 3.5}],
        "frames": preds,
    }
    if insertions is not None:
        doc.update(schema_version=2, insertions=insertions)
    return LandedClip(clip_id, day, store_id, device_id, clip_key(day, store_id, device_id, clip_id, layout),
                      sidecar_key(day, store_id, device_id, clip_id, layout), data, parse_sidecar(doc))


def insertion_summary(first: int, last: int, label: str | None = EANS[0], confidence: float = 0.8,
                      **over: Any) -> dict:
    """One ClipSidecarV2 `insertions` entry decided by the vote."""
    return {"first_frame": first, "last_frame": last, "label": label, "confidence": confidence,
            "source": "vote", "n_frames": last - first + 1, "n_voting": last - first + 1,
            "vote_label": label, "vote_confidence": confidence, "barcode": None, **over}


def land(lake: Lake, clip: LandedClip, *, clip_part: bool = True, sidecar: bool = True,
         clip_bytes: bytes | None = None, sidecar_bytes: bytes | None = None, arrival: bool | None = None,
         at: datetime | None = None) -> LandedClip:
    """Upload like a device: the clip first, the sidecar (its presence = complete), then the arrival
    marker (by default only when the sidecar was written)."""
    if clip_part:
        lake.put(clip.clip_key, clip_bytes if clip_bytes is not None else clip.clip_bytes)
    if sidecar:
        lake.put(clip.sidecar_key, sidecar_bytes if sidecar_bytes is not None else clip.sidecar_bytes)
    if arrival if arrival is not None else sidecar:
        mark_arrival(lake, clip, at=at)
    return clip


def mark_arrival(lake: Lake, clip: LandedClip, at: datetime | None = None) -> str:
    key = arrival_key(at or datetime.now(UTC), clip.day, clip.store_id, clip.device_id, clip.clip_id,
                      parse_clip_key(clip.sidecar_key).layout)
    lake.put(key, b"")
    return key


def land_clip(lake: Lake, *, at: datetime | None = None, **kw: Any) -> LandedClip:
    """Build a clip (`build_clip` arguments) and land it completely; `at` stamps the marker."""
    return land(lake, build_clip(**kw), at=at)


def sidecar_with(clip: LandedClip, **changes: Any) -> bytes:
    """The clip's sidecar JSON with top-level fields replaced (bypasses validation: bad input)."""
    import json

    doc = json.loads(clip.sidecar_bytes)
    doc.update(changes)
    return json.dumps(doc).encode()


def status_report(*, device_id: str, store_id: str, at: datetime, captures: int = 10,
                  drops: dict[str, int] | None = None, frames: int = 1000,
                  model_version: str = "m-0001") -> bytes:
    """A StatusReportV1 document (what a device heartbeat uploads)."""
    from edge_agent.contract.schemas import StatusReportV1

    doc = StatusReportV1(
        device_id=device_id, store_id=store_id, reported_at=at, agent_version="0.1.0",
        model_version=model_version, rule_set_version="rules-1", window_s=300.0,
        frames_processed=frames, fire_counts={"all(motion,barcode)": captures, "low_conf": 2},
        captures=captures, drops=drops or {}, capture_pauses=0, cleanups=0, uploaded_clips=captures,
        uploaded_bytes=captures * 100_000, upload_bytes_per_s=50_000.0,
        inference_latency_ms={"p50": 12.0, "p99": 30.0})
    return dump_document(doc)
