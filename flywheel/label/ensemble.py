"""Combine the labelers' votes: a weighted vote whose weights and confidence calibration are fitted
on the items humans reviewed so far (human-calibrated labelling).

score(label) = sum over labelers voting `label` of weight[labeler] * their confidence; the weight
labeler only adds to labels another labeler named (it narrows, never decides alone). The final
confidence is P(correct | margin, empty_score) from a logistic (Platt) fit on the human reviews:
the vote margin, and the filter's empty_score (a frame the filter nearly dropped is often empty,
whatever the barcode propagated onto it).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from flywheel.label.prelabelers.base import Vote

# Before any human review: barcode reads are near-certain, OCR on a matched brand+name is strong,
# models are priors. Log-odds scale, refitted from reviews as soon as there are enough.
DEFAULT_WEIGHTS = {"barcode": 4.0, "reader": 2.0, "vlm": 1.0, "teacher": 1.0, "weight": 0.5}
MIN_REVIEWED = 30  # reviewed items before the fit replaces the defaults
NARROW_ONLY = {"weight"}  # labelers that never decide alone
OUTSIDE_CANDIDATES = 0.25  # a label the weight step rules out keeps this share of its score


@dataclass(frozen=True)
class Calibration:
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    a: float = 2.0  # P(correct) = sigmoid(a * margin + b + c * empty_score)
    b: float = -1.0
    c: float = 0.0  # the filter's empty_score: a kept frame that nearly looked empty is doubtful
    n_reviewed: int = 0  # human-reviewed items it was fitted on (0 = defaults)
    accuracy: dict[str, float] = field(default_factory=dict)  # per labeler, on reviewed items

    @property
    def version(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return f"{'human' if self.n_reviewed else 'default'}-{hashlib.sha256(blob).hexdigest()[:8]}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class Decision:
    label: str | None
    confidence: float
    margin: float
    disagreement: bool  # labelers that voted disagree
    barcode_mismatch: bool  # a vision labeler contradicts the barcode
    ranked: tuple[str, ...] = ()  # every label some labeler named, best score first


def scores(votes: Mapping[str, Vote], weights: Mapping[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, v in votes.items():
        if v.label is not None and name not in NARROW_ONLY and weights.get(name, 1.0) > 0:
            out[v.label] = out.get(v.label, 0.0) + weights.get(name, 1.0) * v.confidence
    for name, v in votes.items():
        if name in NARROW_ONLY and v.candidates:
            for c in out:
                if c in v.candidates:  # supports a label another labeler named
                    out[c] += weights.get(name, 1.0) / len(v.candidates)
                else:  # the load cell says it is not this product
                    out[c] *= OUTSIDE_CANDIDATES
    return out


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def decide(votes: Mapping[str, Vote], cal: Calibration, vision: Mapping[str, bool],
           empty_score: float = 0.0) -> Decision:
    s = scores(votes, cal.weights)
    # a labeler the humans found no better than chance (weight 0) neither votes nor dissents
    voted = {n: v.label for n, v in votes.items()
             if v.label is not None and n not in NARROW_ONLY and cal.weights.get(n, 1.0) > 0}
    disagreement = len(set(voted.values())) > 1
    bc = voted.get("barcode")
    mismatch = bc is not None and any(lab != bc for n, lab in voted.items() if vision.get(n, True))
    if not s:
        return Decision(None, 0.0, 0.0, disagreement, mismatch)
    ranked = sorted(s.items(), key=lambda kv: (-kv[1], kv[0]))
    margin = ranked[0][1] - (ranked[1][1] if len(ranked) > 1 else 0.0)
    z = cal.a * margin + cal.b + cal.c * empty_score
    return Decision(ranked[0][0], round(_sigmoid(z), 6), margin, disagreement, mismatch,
                    tuple(k for k, _ in ranked))


def candidates(votes: Mapping[str, Vote], decision: Decision, k: int = 5) -> list[str]:
    """The short list an annotator picks from instead of the whole catalog: the labels the vote
    ranked, then what a narrowing labeler (the load cell) finds possible, at most `k`."""
    out = list(decision.ranked[:k])
    for name, v in sorted(votes.items()):
        if name in NARROW_ONLY:
            out += [c for c in v.candidates if c not in out]
    return out[:k]


def logistic_fit(x: Sequence[Sequence[float]], y: Sequence[int], l2: float = 1e-2,
                 sample_weight: Sequence[float] | None = None) -> list[float]:
    """Logistic regression of y on the feature rows x plus an intercept (Newton's method, a small
    ridge so separable data stays finite); the intercept comes last. `sample_weight`: each row's
    weight (an inverse inclusion probability), 1 by default."""
    import numpy as np

    X = np.column_stack([np.asarray(x, float), np.ones(len(x))])
    t = np.asarray(y, float)
    sw = np.ones(len(t)) if sample_weight is None else np.asarray(sample_weight, float)
    w = np.zeros(X.shape[1])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(X @ w, -30, 30)))
        g = X.T @ (sw * (p - t)) + l2 * w
        H = (X * (sw * p * (1 - p))[:, None]).T @ X + l2 * np.eye(X.shape[1])
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return [float(v) for v in w]


def fit(items: Sequence[tuple], n_classes: int) -> Calibration:
    """Fit weights and calibration on human-reviewed items: (the votes, the human label[, the
    filter's empty_score[, the item's weight]]).

    The reviewed items are not a random sample: the doubtful are all reviewed, the auto-accepted
    only through the audit draw. Each item's weight is the inverse of its inclusion probability
    (1 for a review task, 1 / audit rate for an audit answer), so both the labelers' accuracies and
    the Platt fit describe every frame the ensemble decides, not only the doubtful ones (Horvitz-
    Thompson weighting). Weights are each labeler's log-odds of being right against a random pick
    among n_classes (independent voters: the naive-Bayes weight), from its accuracy when it voted."""
    if len(items) < MIN_REVIEWED:
        return Calibration(n_reviewed=0)
    right: dict[str, float] = {}
    seen: dict[str, float] = {}
    for votes, truth, *rest in items:
        iw = float(rest[1]) if len(rest) > 1 else 1.0
        for name, v in votes.items():
            if v.label is not None:
                seen[name] = seen.get(name, 0.0) + iw
                right[name] = right.get(name, 0.0) + iw * (v.label == truth)
    weights, acc = dict(DEFAULT_WEIGHTS), {}
    for name, n in seen.items():
        a = (right.get(name, 0.0) + 1) / (n + 2)  # Laplace: a few items never give 0 or 1
        acc[name] = round(right.get(name, 0.0) / n, 4)
        if name not in NARROW_ONLY:
            weights[name] = round(max(0.0, math.log(a * max(n_classes - 1, 1) / (1 - a))), 4)
    cal = Calibration(weights=weights, n_reviewed=len(items), accuracy=acc)
    xs, ys, ws = [], [], []
    for votes, truth, *rest in items:
        d = decide(votes, cal, {})
        if d.label is not None:
            xs.append((d.margin, float(rest[0]) if rest else 0.0))
            ys.append(int(d.label == truth))
            ws.append(float(rest[1]) if len(rest) > 1 else 1.0)
    if len(set(ys)) < 2:  # all right (or all wrong): keep the default slope, shift by the rate
        rate = (sum(ys) + 1) / (len(ys) + 2)
        return Calibration(weights, 2.0, math.log(rate / (1 - rate)), 0.0, len(items), acc)
    a, c, b = logistic_fit(xs, ys, sample_weight=ws)
    return Calibration(weights, round(a, 6), round(b, 6), round(c, 6), len(items), acc)
