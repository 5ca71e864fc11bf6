"""The two-stage device model's pixel math: detector input, its box, the square crop, P(empty).

A one-class item detector finds the package being inserted; a classifier names it from a square
crop around the box. Everything here is numpy (the device has no torch), and the Learner imports
it from here for training crops, golden inputs and evaluation, so both sides see identical pixels:

- `letterbox`: the frame scaled to fit the detector's square input (nearest neighbour), centred,
  padded with grey 114 (ultralytics' geometry; it trains with bilinear resizing, which a model
  trained at the same size barely tells apart);
- `best_box`: the highest-scoring box of an ultralytics detect head, back in frame pixels;
- `square_crop` / `balanced_crop`: a crop `margin` x the box's longer side, nearest neighbour,
  white-balanced by the WHOLE frame's gains (a crop is mostly the package: its own gray world
  would bleach the package's colour, the cue the classifier needs);
- `combine`: the per-frame class probabilities from the box confidence and the crop classifier.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge_agent.whitebalance import apply_gains, gains

MARGIN = 1.3  # crop side = longer box side x this: some context, the whole package
MIN_SIDE = 8.0  # px: a degenerate box still gives a crop with some content
PAD_VALUE = 114  # ultralytics' letterbox grey
JITTER_SCALE = (0.9, 1.25)  # training: crop side x U(lo, hi), as a detector's box is never exact
JITTER_SHIFT = 0.12  # training: centre moved by U(-s, s) x side on each axis
EMPTY_RULES = ("product", "gate", "cls")


def square_crop(img: np.ndarray, box: Sequence[float], size: int, margin: float = MARGIN,
                rng: np.random.Generator | None = None,
                jitter_scale: tuple[float, float] = JITTER_SCALE,
                jitter_shift: float = JITTER_SHIFT) -> np.ndarray:
    """A size x size nearest-neighbour crop centred on `box` [x1, y1, x2, y2] (frame pixels; edge
    pixels repeat past the frame). With `rng`, the crop is jittered (training only)."""
    H, W = img.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = max(x2 - x1, y2 - y1, MIN_SIDE) * margin
    if rng is not None:
        side *= rng.uniform(*jitter_scale)
        cx += rng.uniform(-jitter_shift, jitter_shift) * side
        cy += rng.uniform(-jitter_shift, jitter_shift) * side
    grid = (np.arange(size) + 0.5) * side / size - side / 2
    ys = np.clip((cy + grid).astype(int), 0, H - 1)
    xs = np.clip((cx + grid).astype(int), 0, W - 1)
    return np.ascontiguousarray(img[ys][:, xs])


def balanced_crop(img: np.ndarray, box: Sequence[float], size: int, wb: str,
                  rng: np.random.Generator | None = None, margin: float = MARGIN,
                  jitter_scale: tuple[float, float] = JITTER_SCALE,
                  jitter_shift: float = JITTER_SHIFT) -> np.ndarray:
    """`square_crop` white-balanced by the whole frame's gains (edge_agent/whitebalance.py)."""
    crop = square_crop(img, box, size, margin, rng, jitter_scale, jitter_shift)
    return crop if wb == "none" else apply_gains(crop, gains(img, wb))


def letterbox_geometry(H: int, W: int, h: int, w: int) -> tuple[float, int, int, int, int]:
    """(scale, new_h, new_w, top, left) of fitting an H x W frame into h x w, centred."""
    r = min(h / H, w / W)
    nh, nw = int(round(H * r)), int(round(W * r))
    top, left = int(round((h - nh) / 2 - 0.1)), int(round((w - nw) / 2 - 0.1))
    return r, nh, nw, top, left


def letterbox(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """The detector's input: 1x3xhxw float32 in 0..1 (RGB, nearest neighbour, grey padding)."""
    h, w = hw
    H, W = img.shape[:2]
    r, nh, nw, top, left = letterbox_geometry(H, W, h, w)
    ys = np.minimum((np.arange(nh) * H // nh), H - 1).astype(np.intp)
    xs = np.minimum((np.arange(nw) * W // nw), W - 1).astype(np.intp)
    canvas = np.full((h, w, 3), PAD_VALUE, np.uint8)
    canvas[top:top + nh, left:left + nw] = img[ys][:, xs]
    x = canvas.astype(np.float32) * (1.0 / 255.0)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def golden_scale(output: np.ndarray, side: int) -> np.ndarray:
    """The detector's raw output [n, 5, anchors] with its boxes (cx, cy, w, h in input pixels) as
    fractions of the input side, scores as they are: what golden checks compare, so one tolerance
    means the same on boxes as on scores (a 96 px box off by 1e-3 px is not a broken export)."""
    out = np.array(output, dtype=np.float32, copy=True)
    out[:, :4] /= float(side)
    return out


def best_box(output: np.ndarray, frame_hw: tuple[int, int], input_hw: tuple[int, int]
             ) -> tuple[list[float], float]:
    """The highest-scoring box of an ultralytics detect output [1, 4 + classes, anchors] (cx, cy,
    w, h in input pixels; class scores already sigmoid) as ([x1, y1, x2, y2] in frame pixels,
    its score). No NMS: the top box survives NMS by definition, and only it is used."""
    out = np.asarray(output)[0]
    scores = out[4:].max(0)
    k = int(np.argmax(scores))
    cx, cy, bw, bh = (float(v) for v in out[:4, k])
    H, W = frame_hw
    r, _, _, top, left = letterbox_geometry(H, W, *input_hw)
    x1 = min(max((cx - bw / 2 - left) / r, 0.0), float(W))
    x2 = min(max((cx + bw / 2 - left) / r, 0.0), float(W))
    y1 = min(max((cy - bh / 2 - top) / r, 0.0), float(H))
    y2 = min(max((cy + bh / 2 - top) / r, 0.0), float(H))
    return [x1, y1, x2, y2], float(scores[k])


def combine(box_conf: float, crop_probs: np.ndarray, empty_index: int, rule: str = "product",
            min_conf: float = 0.0) -> np.ndarray:
    """The frame's class probabilities (the classifier's label order) from the detector's best box
    confidence c and the crop classifier's softmax q (its empty output at `empty_index`). A box
    of c = 0 is no box: P(empty) = 1. With s = q's SKU part renormalised (its empty output left out):

    - "product": P(empty) = 1 - c, P(sku) = c s (a doubtful box makes even a right SKU empty);
      a box with c < min_conf is no box;
    - "gate": a box with c >= min_conf decides "a product": P(empty) = 0, P(sku) = s; a weaker box
      gives the "product" vector (its top is empty, so the frame abstains from the insertion vote,
      but an insertion whose frames all abstain is still decided by their SKU probabilities);
    - "cls": q as it is (the classifier's empty class, trained on background crops, decides);
      a box with c < min_conf is no box.
    Every rule sums to 1. The names are benchmarks/bench_learner_roi.py's (`frame_probs`)."""
    if rule not in EMPTY_RULES:
        raise ValueError(f"empty rule {rule!r}: expected one of {EMPTY_RULES}")
    q = np.asarray(crop_probs, np.float64)
    p = np.zeros_like(q)
    c = float(box_conf)
    c = min(c, 1.0) if np.isfinite(c) else 0.0  # a broken detector output is no box, never a sure one
    sku = q.copy()
    sku[empty_index] = 0.0
    rest = float(sku.sum())
    weak = c < min_conf
    if c <= 0.0 or (weak and rule != "gate") or (rule != "cls" and rest <= 0.0):
        p[empty_index] = 1.0
    elif rule == "product" or (rule == "gate" and weak):
        p = sku * (c / rest)
        p[empty_index] = 1.0 - c
    elif rule == "gate":
        p = sku / rest
    else:
        p = q / q.sum()
    return p
