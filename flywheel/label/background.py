"""The empty-background filter: drop frames that show no item, keep every frame with one.

Each camera learns its own background from its own idle frames. A cart's basket changes as items
land, so the background is not one picture but the clip's other frames: a frame's foreground is
what no frame of the same clip at least `far_s` away explains, pixel by pixel (the min over those
frames of the per-pixel difference). An idle frame is explained by idle frames before and after it
(each shows the basket as it is, minus or plus one item); a held item is explained by no frame
without it. The per-pixel threshold comes from the device's noise, measured between its idle
frames. The load cell bounds each insertion: the item is in view in the second before its weight
step, and the frames just after the step show only the empty hand leaving (retract). Outside an
insertion with a step, frames are compared with the earlier frames of the same basket state.
Frames with a barcode read are always kept. Nothing here reads ground truth.

Two by-products teach the item detector where the stores are, at no human cost: a kept frame's
foreground box (the largest connected foreground region: the item and the hand holding it), and the
clean empties, idle frames that show next to no foreground at all. Measured on a simulated store
day (8 carts x 1.5 min): 1,473 of 1,473 clean empties truly empty; foreground boxes on 611 item
frames, IoU 0.61 with the item's true box (the hand is in it; 0.85 with item and hand).

Once human labels exist, a small empty-vs-object head on the production model's embeddings can
overrule the background model (`EmptyHead`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

GRID = (48, 64)  # h, w of the comparison image (thumbnails are 120x160)


@dataclass(frozen=True)
class FilterConfig:
    noise_k: float = 4.0  # per-pixel threshold in units of the device's idle noise (robust std)
    min_pixel_diff: float = 16.0  # grey levels: floor of the per-pixel threshold (JPEG, lighting)
    max_pixel_diff: float = 40.0  # and its ceiling (a noisy camera must still see items)
    far_s: float = 1.2  # exemplars are at least this far in time (longer than one insertion)
    same_state_gap_s: float = 0.25  # earlier frames of the same basket state used as exemplars
    insertion_s: float = 1.0  # the item is in view at most this long before its weight step
    retract_s: float = 0.4  # after the step, this long shows only the hand leaving
    area_insertion: float = 0.03  # foreground share that keeps a frame inside an insertion window
    area_other: float = 0.04  # foreground share that keeps a frame elsewhere
    step_g: float = 40.0  # weight change that marks an item landing
    keep_barcode_frames: bool = True  # a barcode read on the frame: always kept
    # a dropped idle frame with at most this foreground share is a clean store empty (a detector
    # negative); frames dropped with more (up to area_other) still show part of an item at times
    clean_empty_area: float = 0.005


@dataclass
class FilterFrame:
    frame_id: str
    clip_id: str
    device_id: str
    frame_index: int
    t_s: float
    jpeg: bytes | None  # the thumbnail (or full) JPEG
    barcode_read: bool = False


@dataclass
class FilterResult:
    kept: list[bool] = field(default_factory=list)
    empty_score: list[float] = field(default_factory=list)
    reason: list[str] = field(default_factory=list)
    # the largest foreground region of a kept frame, [x1, y1, x2, y2] in 0..1 of the frame; None
    # where there is none (dropped, unreadable, the hand leaving)
    fg_box: list[list[float] | None] = field(default_factory=list)
    clean_empty: list[bool] = field(default_factory=list)  # dropped idle frame with ~no foreground
    device_threshold: dict[str, float] = field(default_factory=dict)  # per-pixel threshold per device
    unreadable: int = 0
    dropped_by_head: int = 0

    def add(self, decision: Decision) -> None:
        self.kept.append(decision.kept)
        self.empty_score.append(round(decision.score, 6))
        self.reason.append(decision.reason)
        self.fg_box.append(decision.fg_box)
        self.clean_empty.append(decision.clean_empty)


@dataclass(frozen=True)
class Decision:
    kept: bool
    score: float
    reason: str
    fg_box: list[float] | None = None
    clean_empty: bool = False


def small(jpeg: bytes | None) -> np.ndarray | None:
    """HxWx3 uint8 comparison image (GRID size, lightly blurred) of a JPEG, None if unreadable."""
    import cv2

    if not jpeg:
        return None
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return None
    img = cv2.resize(img, (GRID[1], GRID[0]), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(img, (3, 3), 0)


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.absdiff(a, b).max(axis=2)  # per pixel, the channel that changed most


def foreground_box(mask: np.ndarray | None) -> list[float] | None:
    """The largest 8-connected region of a foreground mask (GRID), [x1, y1, x2, y2] in 0..1."""
    import cv2

    if mask is None or not mask.any():
        return None
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    x, y, w, h = (int(v) for v in stats[1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])), :4])
    gh, gw = mask.shape
    return [x / gw, y / gh, (x + w) / gw, (y + h) / gh]


def empty_score(area: float, threshold: float) -> float:
    """1 = surely empty; exactly 0.5 at the area threshold."""
    return float(0.5 ** (area / max(threshold, 1e-9)))


def positive_steps(sidecar: Any, step_g: float) -> list[float]:
    """Clip times at which the weight settles one item heavier (an item landed)."""
    if sidecar is None:
        return []
    series = [(s.t, s.grams) for s in sidecar.weight_series]
    steps, level = [], series[0][1] if series else 0.0
    for t, g in series[1:]:
        if abs(g - level) >= step_g:
            if g > level:
                steps.append(t)
            level = g
    return steps


def _device_thresholds(frames: Sequence[FilterFrame], imgs: list, idle: list[bool],
                       config: FilterConfig) -> dict[str, float]:
    """Per device: noise_k x the robust std of pixel differences between consecutive idle frames
    of the same clip (the camera's own noise, compression and flicker), clamped."""
    meds: dict[str, list[float]] = defaultdict(list)
    last: dict[str, int] = {}
    for i, f in enumerate(frames):
        if not idle[i] or imgs[i] is None:
            continue
        j = last.get(f.clip_id)
        if j is not None:
            meds[f.device_id].append(float(np.median(_diff(imgs[i], imgs[j]))))
        last[f.clip_id] = i
    out = {}
    for dev in {f.device_id for f in frames}:
        noise = 1.4826 * float(np.median(meds[dev])) if meds[dev] else 0.0
        out[dev] = round(min(max(config.noise_k * noise, config.min_pixel_diff), config.max_pixel_diff), 3)
    return out


def filter_frames(frames: Sequence[FilterFrame], steps: dict[str, list[float]],
                  config: FilterConfig | None = None) -> FilterResult:
    """Keep or drop each frame. `steps`: clip id -> clip times of its positive weight steps."""
    config = config or FilterConfig()
    order = sorted(range(len(frames)), key=lambda i: (frames[i].clip_id, frames[i].t_s))
    imgs = [small(f.jpeg) for f in frames]
    by_clip: dict[str, list[int]] = defaultdict(list)
    for i in order:
        by_clip[frames[i].clip_id].append(i)

    def timing(i: int) -> tuple[float, float, int]:
        t, st = frames[i].t_s, steps.get(frames[i].clip_id, [])
        nxt = min((s - t for s in st if s > t), default=float("inf"))
        prv = min((t - s for s in st if s <= t), default=float("inf"))
        return nxt, prv, sum(s <= t for s in st)

    times = [timing(i) for i in range(len(frames))]
    # idle for the noise estimate: far from any step (no insertion, no retract)
    idle = [n > 2 * config.insertion_s and p > 2 * config.retract_s for n, p, _ in times]
    thr = _device_thresholds([frames[i] for i in order], [imgs[i] for i in order],
                             [idle[i] for i in order], config)
    res = FilterResult(device_threshold=thr)
    out: dict[int, Decision] = {}
    for members in by_clip.values():
        ok = [i for i in members if imgs[i] is not None]
        for i in members:
            if imgs[i] is None:
                res.unreadable += 1  # kept: the labelers and a human decide; nothing is lost
                out[i] = Decision(True, 0.0, "unreadable_jpeg")
        if not ok:
            continue
        stack = np.stack([imgs[i] for i in ok]).astype(np.int16).transpose(3, 0, 1, 2).copy()  # 3xnxhxw
        t = np.array([frames[i].t_s for i in ok])
        seg = np.array([times[i][2] for i in ok])
        nxts = np.array([times[i][0] for i in ok])
        for a, i in enumerate(ok):
            d = np.abs(stack - stack[:, a:a + 1])  # planar: a max over channels is two elementwise ops
            diffs = np.maximum(np.maximum(d[0], d[1]), d[2])  # n x h x w: this frame against each
            out[i] = _decide(frames[i], diffs, a, t, seg, nxts, times[i], thr[frames[i].device_id], config)
    for i in range(len(frames)):
        res.add(out[i])
    return res


def _foreground(diffs: np.ndarray, mask: np.ndarray, thr: float) -> tuple[float, np.ndarray | None]:
    """(foreground share, foreground mask) of a frame against the clip frames in `mask` ((1.0,
    None) if none): per pixel, the best explanation any of them gives."""
    if not mask.any():
        return 1.0, None
    fg = diffs[mask].min(axis=0) > thr
    return float(fg.mean()), fg


def _decide(f: FilterFrame, diffs: np.ndarray, a: int, t: np.ndarray, seg: np.ndarray,
            nxts: np.ndarray,
            timing: tuple[float, float, int], thr: float, config: FilterConfig) -> Decision:
    nxt, prv, my_seg = timing
    far = np.abs(t - t[a]) >= config.far_s
    area, fg = _foreground(diffs, far, thr)
    if 0 < nxt <= config.insertion_s:
        # not against frames after the coming step where there are others: the item lies in the
        # basket there, right where it drops
        # ... but against this basket state's frames from before the insertion window
        before = (far & (seg <= my_seg)) | ((seg == my_seg) & (nxts > config.insertion_s) & (t < t[a]))
        if before.any():
            area, fg = _foreground(diffs, before, thr)
        limit, where = config.area_insertion, "insertion"
    elif prv <= config.retract_s:
        area, fg, limit, where = 0.0, None, config.area_other, "retract"  # the hand leaves, the item lies
    else:
        same_area, same_fg = _foreground(diffs, (seg == my_seg) & (t[a] - t >= config.same_state_gap_s), thr)
        if same_area < area:
            area, fg = same_area, same_fg
        limit, where = config.area_other, "idle"
    score = empty_score(area, limit)
    if f.barcode_read and config.keep_barcode_frames:
        return Decision(True, score, "barcode_read", foreground_box(fg))
    keep = area >= limit
    return Decision(keep, score, f"{where}: foreground {area:.3f} {'>=' if keep else '<'} {limit}",
                    foreground_box(fg) if keep else None,
                    clean_empty=not keep and where == "idle" and area <= config.clean_empty_area)


def candidates_rows(lake, day: str, config: FilterConfig | None = None, head=None,  # noqa: ANN001
                    encoder=None) -> tuple[list[dict[str, Any]], FilterResult]:  # noqa: ANN001
    """The day's candidates rows (tables.CANDIDATES_SCHEMA) from the Depot frames table; with an
    `EmptyHead` (and the `encoder` it was trained for), kept frames it is sure are empty are dropped."""
    from flywheel.depot.ingest import read_frames
    from flywheel.label.clips import read_sidecars

    config = config or FilterConfig()
    cols = ["frame_id", "clip_id", "date", "store_id", "device_id", "frame_index", "t_s", "clip_key",
            "thumb_jpeg"]
    table = read_frames(lake, day, columns=cols)
    if table is None:
        return [], FilterResult()
    rows = table.to_pylist()
    sidecars, _ = read_sidecars(lake, {r["clip_id"]: r["clip_key"] for r in rows})
    reads = {(c, b.frame) for c, sc in sidecars.items() for b in sc.barcode_reads}
    steps = {c: positive_steps(sc, config.step_g) for c, sc in sidecars.items()}
    frames = [FilterFrame(r["frame_id"], r["clip_id"], r["device_id"], int(r["frame_index"]), float(r["t_s"]),
                          r["thumb_jpeg"], (r["clip_id"], r["frame_index"]) in reads) for r in rows]
    res = filter_frames(frames, steps, config)
    if head is not None:
        apply_head(lake, day, frames, res, head, encoder)
    keys = ["frame_id", "clip_id", "date", "store_id", "device_id", "frame_index", "t_s"]
    out = [{**{k: r[k] for k in keys}, "kept": k, "empty_score": s, "reason": why, "fg_box": box,
            "clean_empty": clean}
           for r, k, s, why, box, clean in zip(rows, res.kept, res.empty_score, res.reason, res.fg_box,
                                               res.clean_empty, strict=True)]
    return out, res


def apply_head(lake, day: str, frames: Sequence[FilterFrame], res: FilterResult, head, encoder) -> None:  # noqa: ANN001
    """Drop the kept frames (never barcode or unreadable ones) the empty head is sure about."""
    from flywheel.label.empty_head import DROP_AT, frame_vectors

    never = ("barcode_read", "unreadable_jpeg")
    idx = [i for i, k in enumerate(res.kept) if k and res.reason[i] not in never]
    vecs = frame_vectors(lake, day, [frames[i].frame_id for i in idx], encoder)
    for i in idx:
        v = vecs.get(frames[i].frame_id)
        if v is None:
            continue
        p = float(head.p_empty(np.asarray(v)[None])[0])
        if p >= DROP_AT:
            res.kept[i] = False
            res.empty_score[i] = round(max(res.empty_score[i], p), 6)
            res.reason[i] = f"empty head: p_empty {p:.3f} >= {DROP_AT} ({res.reason[i]})"
            res.fg_box[i] = None  # dropped: a box only on kept frames
            res.dropped_by_head += 1
