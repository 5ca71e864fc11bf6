"""Checking and averaging head updates: FedAvg weighted by samples, with norm bounding.

Every update is checked before it counts: exactly the head's two arrays with the head's shapes,
finite, a sample count in [1, max_samples], and a change ||W - W0|| no larger than `max_delta_norm`
times the global head's own norm. What passes is averaged weighted by samples (FedAvg, McMahan et
al. 2017) after each change is clipped to `clip_factor` x the median change (norm bounding, Sun et
al. 2019): robust aggregation against one loud device, not against a coordinated poison; the
evaluation gate stands behind it for that.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class AggregationRules:
    max_samples: int = 5000  # a device claiming more samples than a device can hold is lying
    max_delta_norm: float = 10.0  # ||W - W0|| / ||W0|| above this: rejected as a huge update
    clip_factor: float = 2.0  # changes clipped to this x the median change norm (0 = no clipping)


@dataclass
class Update:
    device: str
    w: np.ndarray
    b: np.ndarray
    n: int
    metrics: dict = field(default_factory=dict)


def check_update(device: str, arrays: list, n: int, w0: np.ndarray, b0: np.ndarray,
                 rules: AggregationRules) -> tuple[Update | None, str]:
    """(the update, "") or (None, why it was rejected)."""
    if len(arrays) != 2:
        return None, f"{len(arrays)} arrays, expected 2 (W, b)"
    w, b = (np.asarray(a) for a in arrays)
    if w.shape != w0.shape or b.shape != b0.shape:
        return None, f"shapes {w.shape}/{b.shape}, expected {w0.shape}/{b0.shape}"
    if not (np.issubdtype(w.dtype, np.floating) and np.issubdtype(b.dtype, np.floating)):
        return None, f"dtype {w.dtype}/{b.dtype}, expected floating point"
    if not (np.isfinite(w).all() and np.isfinite(b).all()):
        return None, "non-finite values (NaN or inf)"
    if not 1 <= n <= rules.max_samples:
        return None, f"sample count {n} outside [1, {rules.max_samples}]"
    scale = max(float(np.linalg.norm(w0)), 1.0)
    delta = float(np.linalg.norm(w.astype(np.float64) - w0)) / scale
    if delta > rules.max_delta_norm:
        return None, f"change {delta:.3g} x the head's norm > {rules.max_delta_norm:g} (huge update)"
    return Update(device, w.astype(np.float32), b.astype(np.float32), int(n)), ""


def fedavg(updates: list[Update], w0: np.ndarray, b0: np.ndarray, rules: AggregationRules
           ) -> tuple[np.ndarray, np.ndarray, dict]:
    """W0 + the sample-weighted mean of the (clipped) changes; returns the head and what clipped."""
    dw = [u.w.astype(np.float64) - w0 for u in updates]
    db = [u.b.astype(np.float64) - b0 for u in updates]
    norms = np.array([np.sqrt(np.linalg.norm(a) ** 2 + np.linalg.norm(c) ** 2) for a, c in zip(dw, db,
                                                                                                strict=True)])
    bound = float(np.median(norms)) * rules.clip_factor if rules.clip_factor > 0 else np.inf
    clipped = []
    weights = np.array([u.n for u in updates], np.float64)
    weights /= weights.sum()
    w, b = np.array(w0, np.float64), np.array(b0, np.float64)
    for u, a, c, norm, share in zip(updates, dw, db, norms, weights, strict=True):
        f = 1.0
        if norm > bound > 0:
            f = bound / norm
            clipped.append(u.device)
        w += share * f * a
        b += share * f * c
    return w.astype(np.float32), b.astype(np.float32), {"clip_bound": bound, "clipped": clipped}
