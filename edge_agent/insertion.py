"""One decision per insertion from all its frames: what the cart needs is the item, not a frame.

The frames of one insertion (approach, hold, drop) each give a probability vector over the model's
labels. Frames the model calls "no product" abstain; the others vote with their probabilities (a
confident frame weighs more than a doubtful one), and the label with the largest summed
probability wins. A barcode read during the insertion outranks the vote: a decoded EAN-13 carries
its own checksum, so it is right far more often than any frame-level classifier. The cloud's
insertion-level evaluation imports this module, so the figure it reports is what the device does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from edge_agent.model import NONE_LABELS


@dataclass(frozen=True)
class InsertionDecision:
    label: str | None  # the decided SKU; None when no frame saw a product and nothing was read
    confidence: float  # barcode: share of reads agreeing; vote: mean probability of the winner
    source: str  # "barcode" | "vote" | "none"
    n_frames: int  # frames of the insertion
    n_voting: int  # frames that did not say "no product"
    vote_label: str | None  # what the model alone decided (equals `label` unless a barcode won)
    vote_confidence: float
    barcode: str | None  # the barcode that decided, if any

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _none_mask(labels: Sequence[str]) -> np.ndarray:
    return np.array([lab.lower() in NONE_LABELS for lab in labels], bool)


def vote(probs: np.ndarray, labels: Sequence[str]) -> tuple[str | None, float, int]:
    """(label, confidence, frames voting) from per-frame probabilities [n_frames, n_labels].

    Frames whose top class is "no product" abstain; if every frame abstains, the product classes'
    probabilities of all frames still decide (an item seen poorly is still an item), with the
    confidence that evidence deserves (the winner's mean probability, usually low)."""
    probs = np.asarray(probs, np.float64).reshape(-1, len(labels))
    if probs.shape[0] == 0:
        return None, 0.0, 0
    none = _none_mask(labels)
    if none.all():
        return None, 0.0, 0
    voting = ~none[probs.argmax(1)]
    use = probs[voting] if voting.any() else probs
    mass = use[:, ~none].sum(0)
    k = int(mass.argmax())
    product_labels = [lab for lab, n in zip(labels, none, strict=True) if not n]
    return product_labels[k], float(mass[k] / use.shape[0]), int(voting.sum())


def decide(probs: np.ndarray, labels: Sequence[str], barcodes: Iterable[str | None] = (),
           known: set[str] | None = None) -> InsertionDecision:
    """The insertion's decision: a barcode read when there is one (the most frequent; a tie goes to
    the code the vote prefers), else the confidence vote. `known` restricts which codes count
    (e.g. the catalog); None accepts any valid read."""
    probs = np.asarray(probs, np.float64).reshape(-1, len(labels))
    label, conf, n_voting = vote(probs, labels)
    reads = Counter(b for b in barcodes if b and (known is None or b in known))
    if reads:
        index = {lab: i for i, lab in enumerate(labels)}
        mass = probs.sum(0) if probs.shape[0] else np.zeros(len(labels))
        code = max(reads, key=lambda b: (reads[b], mass[index[b]] if b in index else -1.0, b))
        return InsertionDecision(code, reads[code] / sum(reads.values()), "barcode",
                                 probs.shape[0], n_voting, label, conf, code)
    return InsertionDecision(label, conf, "vote" if label is not None else "none", probs.shape[0],
                             n_voting, label, conf, None)
