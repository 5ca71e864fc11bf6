"""Labels no human gives: the frames of an insertion whose barcode was read and whose item the
cart's load cell felt land (a weight step) become (embedding, SKU) samples, on the device only.

A barcode read opens an insertion (its frames and the ~1 s before it, the hand approaching); a
weight step of at least `min_step_g` within `confirm_s` of the last read confirms it, and its frames
are kept under the read SKU. A read with no step (a scan without putting the item in), a code the
model has no class for, or two different codes in one insertion keep nothing: a wrong label costs
more than a missing one. Still frames (motion under `still_motion` grey levels, below the
rules' "moving" mark of 7, on this frame and the one before; no weight change, no read, no
insertion open) are the "no product" class, one per `empty_every` of them: without them the head
would forget the empty basket, which most frames show. (Measured on the simulator's carts: two
still frames in a row are 98 % truly empty and 13 % of all frames; the earlier rule, the 5th frame
of an unbroken still run, fired so rarely under sensor noise that "empty" was 2 % of the samples
against 15 % of the stores' test frames and 67 % of cart frames, and the adapted heads lost it.)
The store is a capped ring in memory: samples never leave the device. It is keyed on the embedding
space (contract.federated.embedding_space: the backbone's digest and the label list), not the model
version: a federated candidate that changed only the head keeps the samples, a new backbone drops them.
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

from edge_agent.model import NONE_LABELS


class SampleStore:
    """At most `cap` (embedding, label index) pairs; the oldest go first."""

    def __init__(self, cap: int = 2000) -> None:
        self.cap = cap
        self._x: deque[np.ndarray] = deque(maxlen=cap)
        self._y: deque[int] = deque(maxlen=cap)
        self.space: str | None = None  # the embedding space; embeddings of another one are meaningless
        self.added = 0  # samples ever added
        self._lock = threading.Lock()  # the inference loop adds while the Flower client reads

    def __len__(self) -> int:
        return len(self._y)

    def add(self, space: str, embeddings: list[np.ndarray], label: int) -> None:
        with self._lock:
            self._add(space, embeddings, label)

    def _add(self, space: str, embeddings: list[np.ndarray], label: int) -> None:
        if space != self.space:  # a new backbone (or label list): its embedding space starts afresh
            self._x.clear()
            self._y.clear()
            self.space = space
        for e in embeddings:
            self._x.append(np.asarray(e, np.float32).reshape(-1))
            self._y.append(label)
            self.added += 1

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            xs, ys = list(self._x), list(self._y)
        if not ys:
            return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
        return np.stack(xs), np.asarray(ys, np.int64)


class AutoLabeler:
    """Feeds a SampleStore from the inference loop: one `update` per frame, O(1) amortised."""

    def __init__(self, store: SampleStore, labels: list[str], *, pre_s: float = 1.0,
                 confirm_s: float = 3.0, min_step_g: float = 50.0, max_frames: int = 64,
                 still_motion: float = 5.0, empty_every: int = 2) -> None:
        self.store = store
        self.set_labels(labels)
        self.still_motion, self.empty_every = still_motion, empty_every
        self._still = 0  # length of the current run of still frames
        self._stills = 0  # still frames (in runs of >= 2) ever seen
        self.pre_s, self.confirm_s, self.min_step_g, self.max_frames = (
            pre_s, confirm_s, min_step_g, max_frames)
        self._recent: deque[tuple[float, np.ndarray]] = deque()
        self._last_read = -1e9
        self.confirmed = 0  # insertions kept
        self.discarded = 0  # insertions read but not confirmed (or ambiguous)

    def set_labels(self, labels: list[str]) -> None:
        self.index = {lab: i for i, lab in enumerate(labels)}
        self.empty = next((i for i, lab in enumerate(labels) if lab.lower() in NONE_LABELS), None)
        if getattr(self, "_code", None) is not None:
            self._close(keep=False)
        self._code, self._open = None, []

    def update(self, t: float, embedding: np.ndarray | None, codes: list[str],
               weight_delta_g: float | None, space: str, motion: float | None = None) -> None:
        if embedding is None:
            return
        still = (not codes and self._code is None and motion is not None and motion < self.still_motion
                 and (weight_delta_g is None or abs(weight_delta_g) < 5.0))
        self._still = self._still + 1 if still else 0
        if self.empty is not None and self._still >= 2:
            self._stills += 1
            if self._stills % self.empty_every == 0:
                self.store.add(space, [embedding], self.empty)
        if self._code is not None and t - self._last_read > self.confirm_s:
            self._close(keep=False)
        for code in codes:
            if self._code is None:
                self._code = code
                self._open = [e for ts, e in self._recent if ts >= t - self.pre_s]
            elif code != self._code:  # two items in one insertion: no label is safe
                self._code = "?"
            self._last_read = t
        if self._code is not None:
            if len(self._open) < self.max_frames:
                self._open.append(embedding)
            if weight_delta_g is not None and weight_delta_g >= self.min_step_g:
                self._close(keep=True, space=space)
        self._recent.append((t, embedding))
        while self._recent and self._recent[0][0] < t - self.pre_s:
            self._recent.popleft()

    def _close(self, *, keep: bool, space: str = "") -> None:
        label = self.index.get(self._code) if self._code else None
        if keep and label is not None and self._open:
            self.store.add(space, self._open, label)
            self.confirmed += 1
        elif self._code is not None:
            self.discarded += 1
        self._code, self._open = None, []
