"""One decision per insertion from all its frames: what the cart needs is the item, not a frame.

The frames of one insertion (approach, hold, drop) each give a probability vector over the model's
labels. Frames the model calls "no product" abstain; the others vote with their probabilities (a
confident frame weighs more than a doubtful one), and the label with the largest summed
probability wins. A barcode read during the insertion outranks the vote: a decoded EAN-13 carries
its own checksum, so it is right far more often than any frame-level classifier. The cloud's
insertion-level evaluation imports this module, so the figure it reports is what the device does.

On the device, `InsertionTracker` finds the insertions in the frame stream (the device sees no
ground truth): an insertion opens at the first frame where the model sees a product or a barcode is
read, and closes after `gap_frames` frames with neither (or at `max_frames`); its decision is made
then, over all its frames, and goes into the clip sidecar (ClipSidecarV2 `insertions`) and to the
`low_confidence(..., "insertion")` trigger.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

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
    first_t: float | None = None  # device tracker: stream time of the insertion's first frame
    last_t: float | None = None  # ... and of its last active frame (product seen or code read)
    # still open when it was decided: a clip ended (or the stream did) mid-insertion, so this is the
    # decision over its frames so far (InsertionTracker.peek); the closing decision comes later
    open: bool = False

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


class InsertionTracker:
    """Segments a device's frame stream into insertions and decides each one when it closes.

    `update` takes one frame's class probabilities (a mapping label -> probability over the model's
    labels, or only the top-1's when the model gives no vector) and barcode texts; it returns the
    decision of the insertion this frame closes, else None. Frames keep their own label space, so a
    model hot-swapped mid-insertion still votes (labels missing from a frame count as 0)."""

    def __init__(self, gap_frames: int = 3, max_frames: int = 60,
                 known: set[str] | None = None) -> None:
        if gap_frames < 1 or max_frames < 1:
            raise ValueError("gap_frames and max_frames must be >= 1")
        self.gap_frames, self.max_frames, self.known = gap_frames, max_frames, known
        self._probs: list[dict[str, float]] = []
        self._codes: list[str | None] = []
        self._first_t = self._last_t = 0.0
        self._idle = 0
        self.closed = 0  # insertions decided so far

    @property
    def open(self) -> bool:
        return bool(self._probs)

    def update(self, t: float, probs: dict[str, float], barcodes: Sequence[str] = ()
               ) -> InsertionDecision | None:
        top = max(probs, key=probs.__getitem__) if probs else None
        active = bool(barcodes) or (top is not None and top.lower() not in NONE_LABELS)
        if not self._probs and not active:
            return None
        if active:
            if not self._probs:
                self._first_t = t
            self._last_t, self._idle = t, 0
            self._probs.append(probs)
            self._codes.append(barcodes[0] if barcodes else None)
        else:
            self._idle += 1
        if self._idle >= self.gap_frames or len(self._probs) >= self.max_frames:
            return self.close()
        return None

    def peek(self) -> InsertionDecision | None:
        """The open insertion's decision over its frames so far, marked open, without closing it
        (a clip that ends mid-insertion records this); None when none is open."""
        return replace(self._decide(), open=True) if self._probs else None

    def close(self) -> InsertionDecision | None:
        """Decide the open insertion now (end of stream, a clock jump); None when none is open."""
        if not self._probs:
            return None
        d = self._decide()
        self._probs, self._codes, self._idle = [], [], 0
        self.closed += 1
        return d

    def _decide(self) -> InsertionDecision:
        labels = sorted({lab for p in self._probs for lab in p})
        matrix = np.array([[p.get(lab, 0.0) for lab in labels] for p in self._probs], np.float64)
        d = decide(matrix, labels, self._codes, self.known)
        return replace(d, first_t=self._first_t, last_t=self._last_t)
