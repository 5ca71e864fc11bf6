"""Pre/post-roll ring buffer: turns a stream of annotated frames into capture jobs.

Runs inside the inference loop, so it only moves references: no copies (unless the source reuses
its buffers), no encoding, no I/O. A capture starts at the first firing frame with the last
`pre_roll_s` seconds of frames in front of it, is extended by every further firing, and closes
`post_roll_s` after the last one (or at `max_clip_s`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from edge_agent.insertion import InsertionDecision
from edge_agent.triggers.signals import BarcodeHit


@dataclass
class Firing:
    rule: str  # rule name
    expr: str  # canonical expression
    priority: int
    value: float | str | bool | None
    signals: dict[str, float | str | bool | None]


@dataclass
class FrameRecord:
    image: np.ndarray
    t: float
    wall: datetime
    prediction: str | None
    confidence: float
    barcodes: list[BarcodeHit] = field(default_factory=list)
    weight_g: float | None = None
    location: tuple[str, float] | None = None
    firings: list[Firing] = field(default_factory=list)
    insertion: InsertionDecision | None = None  # the insertion this frame closed (sidecar V2)


@dataclass
class CaptureJob:
    frames: list[FrameRecord]
    model_version: str
    rule_set_version: str
    seq: int  # capture number on this agent (for logs)

    @property
    def priority(self) -> int:
        return min((f.priority for r in self.frames for f in r.firings), default=5)


class Recorder:
    def __init__(self, pre_roll_s: float = 1.0, post_roll_s: float = 1.0, max_clip_s: float = 10.0,
                 copy_frames: bool = False) -> None:
        self.pre_roll_s, self.post_roll_s, self.max_clip_s = pre_roll_s, post_roll_s, max_clip_s
        self.copy_frames = copy_frames
        self._ring: deque[FrameRecord] = deque()
        self._active: list[FrameRecord] | None = None
        self._end_t = 0.0
        self._seq = 0

    @property
    def capturing(self) -> bool:
        return self._active is not None

    def push(self, rec: FrameRecord, model_version: str, rule_set_version: str) -> CaptureJob | None:
        """Add one frame; returns a finished capture job when this frame closes one."""
        if self.copy_frames:
            rec.image = rec.image.copy()
        if self._active is None:
            self._ring.append(rec)
            while self._ring and self._ring[0].t < rec.t - self.pre_roll_s:
                self._ring.popleft()
            if not rec.firings:
                return None
            self._active = list(self._ring)
            self._ring.clear()
            self._end_t = rec.t + self.post_roll_s
            return None
        self._active.append(rec)
        if rec.firings:
            self._end_t = max(self._end_t, rec.t + self.post_roll_s)
        if rec.t >= self._end_t or rec.t - self._active[0].t >= self.max_clip_s:
            return self._close(model_version, rule_set_version)
        return None

    def flush(self, model_version: str, rule_set_version: str) -> CaptureJob | None:
        """Close a capture in progress (end of stream, or time jumped back); empty the ring."""
        self._ring.clear()
        return self._close(model_version, rule_set_version) if self._active else None

    def _close(self, model_version: str, rule_set_version: str) -> CaptureJob:
        frames, self._active = self._active or [], None
        self._seq += 1
        return CaptureJob(frames, model_version, rule_set_version, self._seq)
