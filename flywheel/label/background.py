"""The empty-background filter: drop frames that show no item, keep every frame with one.

Each camera learns its own background from its idle frames. A cart's basket changes as items land,
so the model is not one picture but a bank of idle exemplars: the clip's own pre-roll and post-roll
frames (captured before the shopper's arm comes in and after the item has landed) plus the device's
other idle frames that look like them. A frame's foreground is what no exemplar explains, pixel by
pixel; the device's noise level (learned from pairs of its idle frames) sets the per-pixel threshold.
A frame is empty when its foreground area is below the device's area threshold. Barcode-read frames
are always kept (a barcode in view means an item in view).

Once human labels exist, a small empty-vs-object head on the production model's embeddings is
blended in (`EmptyHead`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

GRID = (48, 64)  # h, w of the comparison image (thumbnails are 120x160)
NOISE_K = 4.0  # per-pixel threshold = NOISE_K x the device's idle-pair noise (robust std)
MIN_PIXEL_DIFF = 18.0  # grey levels: floor of the per-pixel threshold (compression, lighting)
AREA_EMPTY = 0.02  # foreground share of the image at which a frame stops being empty


@dataclass(frozen=True)
class FilterConfig:
    noise_k: float = NOISE_K  # per-pixel threshold in units of the device's idle noise
    min_pixel_diff: float = MIN_PIXEL_DIFF  # floor of the per-pixel threshold
    area_empty: float = AREA_EMPTY  # foreground share at which empty_score crosses 0.5
    edge_frames: int = 1  # sampled frames at each end of a clip taken as idle exemplars
    keep_barcode_frames: bool = True  # a barcode read on the frame: always kept


@dataclass
class FilterFrame:
    frame_id: str
    clip_id: str
    device_id: str
    frame_index: int
    jpeg: bytes | None  # the thumbnail (or full) JPEG
    barcode_read: bool = False


@dataclass
class FilterResult:
    kept: list[bool]
    empty_score: list[float]
    reason: list[str]
    device_noise: dict[str, float] = field(default_factory=dict)
    unreadable: int = 0


def small(jpeg: bytes | None) -> np.ndarray | None:
    """HxWx3 float32 comparison image (blurred, GRID size) of a JPEG, None if unreadable."""
    import cv2

    if not jpeg:
        return None
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return None
    img = cv2.resize(img, (GRID[1], GRID[0]), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(img, (3, 3), 0).astype(np.float32)


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b).max(axis=2)  # per pixel, the channel that changed most


def device_noise(idle: Sequence[np.ndarray]) -> float:
    """Robust per-pixel noise between a device's consecutive idle exemplars (median absolute
    difference, scaled to a std); most pixels of two idle frames differ only by noise."""
    if len(idle) < 2:
        return MIN_PIXEL_DIFF / NOISE_K
    meds = [float(np.median(_diff(a, b))) for a, b in zip(idle, idle[1:], strict=False)]
    return 1.4826 * float(np.median(meds)) + 1e-3


def foreground(img: np.ndarray, exemplars: Sequence[np.ndarray], thr: float) -> float:
    """Share of pixels that no exemplar explains (per-pixel min difference above thr)."""
    if not exemplars:
        return 1.0
    d = np.min(np.stack([_diff(img, e) for e in exemplars]), axis=0)
    return float((d > thr).mean())


def empty_score(area: float, area_empty: float) -> float:
    """1 = surely empty; 0.5 exactly at the area threshold."""
    return float(0.5 ** (area / max(area_empty, 1e-9)))


def filter_frames(frames: Sequence[FilterFrame], config: FilterConfig | None = None) -> FilterResult:
    config = config or FilterConfig()
    imgs = [small(f.jpeg) for f in frames]
    by_clip: dict[str, list[int]] = defaultdict(list)
    for i, f in enumerate(frames):
        by_clip[f.clip_id].append(i)
    # idle exemplars: each clip's first and last sampled frames
    clip_refs: dict[str, list[int]] = {}
    device_idle: dict[str, list[np.ndarray]] = defaultdict(list)
    for clip, idx in by_clip.items():
        idx.sort(key=lambda i: frames[i].frame_index)
        ends = [i for i in idx[:config.edge_frames] + idx[-config.edge_frames:]
                if imgs[i] is not None and not frames[i].barcode_read]
        clip_refs[clip] = list(dict.fromkeys(ends))
        device_idle[frames[idx[0]].device_id].extend(imgs[i] for i in clip_refs[clip])
    noise = {d: device_noise(v) for d, v in device_idle.items()}
    res = FilterResult([], [], [], {d: round(v, 3) for d, v in noise.items()})
    for i, f in enumerate(frames):
        img = imgs[i]
        if img is None:
            res.unreadable += 1  # kept: a human or the labelers decide; nothing is lost
            res.kept.append(True), res.empty_score.append(0.0), res.reason.append("unreadable_jpeg")
            continue
        thr = max(config.min_pixel_diff, config.noise_k * noise[f.device_id])
        refs = [imgs[j] for j in clip_refs[f.clip_id] if j != i]
        area = foreground(img, refs, thr) if refs else 0.0
        score = empty_score(area, config.area_empty) if refs else 0.5
        if f.barcode_read and config.keep_barcode_frames:
            res.kept.append(True), res.empty_score.append(score), res.reason.append("barcode_read")
        elif not refs:
            res.kept.append(False), res.empty_score.append(1.0), res.reason.append("idle_exemplar")
        else:
            keep = score < 0.5
            res.kept.append(keep), res.empty_score.append(round(score, 6))
            res.reason.append(f"foreground {area:.3f}" if keep else f"background {area:.3f}")
    return res


def candidates_rows(lake, day: str, config: FilterConfig | None = None  # noqa: ANN001
                    ) -> tuple[list[dict[str, Any]], FilterResult]:
    """The day's candidates rows (tables.CANDIDATES_SCHEMA) from the Depot frames table."""
    from flywheel.depot.ingest import read_frames
    from flywheel.label.clips import read_sidecars

    cols = ["frame_id", "clip_id", "date", "store_id", "device_id", "frame_index", "t_s", "clip_key",
            "thumb_jpeg"]
    table = read_frames(lake, day, columns=cols)
    if table is None:
        return [], FilterResult([], [], [])
    rows = table.to_pylist()
    sidecars, _ = read_sidecars(lake, {r["clip_id"]: r["clip_key"] for r in rows})
    reads = {(c, b.frame) for c, sc in sidecars.items() for b in sc.barcode_reads}
    frames = [FilterFrame(r["frame_id"], r["clip_id"], r["device_id"], int(r["frame_index"]),
                          r["thumb_jpeg"], (r["clip_id"], r["frame_index"]) in reads) for r in rows]
    res = filter_frames(frames, config)
    keys = ["frame_id", "clip_id", "date", "store_id", "device_id", "frame_index", "t_s"]
    out = [{**{k: r[k] for k in keys}, "kept": k, "empty_score": s, "reason": why}
           for r, k, s, why in zip(rows, res.kept, res.empty_score, res.reason, strict=True)]
    return out, res
