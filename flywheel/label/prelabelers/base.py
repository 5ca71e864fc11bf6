"""The one interface every pre-labeler implements, and what it is handed.

A labeler sees only what the fleet uploaded (the frame, its clip's sidecar) and the catalog; never
ground truth. A failure on one frame is an abstention with a reason, never an exception out of the
batch call: the run goes on and the reasons are counted.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from edge_agent.contract.schemas import ClipSidecar


@dataclass(frozen=True)
class Vote:
    label: str | None  # SKU EAN-13, None = abstain
    confidence: float  # the labeler's own 0..1 score (the ensemble calibrates)
    evidence: str  # what it saw; for an abstention "abstain: <reason>: <detail>"
    reason: str | None = None  # abstentions only: a short counted code ("unreadable_jpeg", ...)
    candidates: tuple[str, ...] = ()  # labels it finds possible (the weight labeler narrows)


def abstain(reason: str, detail: str = "") -> Vote:
    return Vote(None, 0.0, f"abstain: {reason}" + (f": {detail}" if detail else ""), reason)


@dataclass(frozen=True)
class Product:
    ean: str
    name: str | None
    brand: str | None
    category: str | None
    weight_g: float | None

    @property
    def text(self) -> str:
        """What the packaging says: brand and name."""
        return " ".join(x for x in (self.brand, self.name) if x)


@dataclass
class FrameInput:
    """One kept frame with its clip context."""

    frame_id: str
    clip_id: str
    device_id: str
    frame_index: int
    t_s: float
    jpeg: bytes | None
    sidecar: ClipSidecar | None = None  # None when it could not be read (labelers that need it abstain)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the filter's empty_score

    @cached_property
    def rgb(self) -> np.ndarray | None:
        """Decoded pixels, or None for an unreadable JPEG (decoded once, shared by the labelers)."""
        if not self.jpeg:
            return None
        try:
            import cv2

            buf = np.frombuffer(self.jpeg, np.uint8)
            bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        except Exception:  # noqa: BLE001 - any decoder failure is "unreadable"
            return None
        return None if bgr is None else bgr[:, :, ::-1].copy()


class Prelabeler(ABC):
    """name, version, and a batch call: per frame a label or an abstention, a confidence, evidence."""

    name: str = "?"
    version: str = "0"
    vision: bool = True  # judges the pixels (a contradiction with the barcode is a mismatch)
    # {labeler: confidence}: frames where that earlier labeler voted at least this confident are not
    # handed to this one (an expensive labeler adds nothing there); they count as "skipped"
    skip_when: dict[str, float] = {}

    @abstractmethod
    def label(self, frames: Sequence[FrameInput]) -> list[Vote]:
        """One vote per frame, in order. Must not raise for a bad frame: abstain with a reason."""


def unreadable(frame: FrameInput) -> Vote | None:
    """The abstention for a frame without decodable pixels, else None."""
    if frame.rgb is None:
        return abstain("unreadable_jpeg", frame.frame_id)
    return None


def vote_each(frames: Sequence[FrameInput], one: Callable[[FrameInput], Vote], error: str) -> list[Vote]:
    """`one` on every readable frame; an unreadable frame or an exception becomes an abstention
    (`error` is its counted reason), so one bad frame never fails the batch."""
    out = []
    for f in frames:
        bad = unreadable(f)
        if bad:
            out.append(bad)
            continue
        try:
            out.append(one(f))
        except Exception as e:  # noqa: BLE001 - a labeler failure on one frame is an abstention
            out.append(abstain(error, f"{type(e).__name__}: {e}"))
    return out
