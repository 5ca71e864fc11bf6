"""Built-in signals computed per frame: motion, barcode reads, weight change.

Model confidence and prediction come from the device model; the rest is computed here, and only
when the active rule set needs it (barcode decoding is the expensive one).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

MOTION_WIDTH = 80  # motion works on a grey frame about this wide: cheap and robust to sensor noise


def grey_small(image: np.ndarray, width: int = MOTION_WIDTH) -> np.ndarray:
    """Downscale by striding (no filtering) and average the channels: ~20 us for 320x240."""
    step = max(1, image.shape[1] // width)
    small = image[::step, ::step]
    if small.ndim == 3:
        small = small.mean(axis=2, dtype=np.float32)
    return small.astype(np.float32, copy=False)


class MotionDetector:
    """Mean absolute difference of consecutive downscaled grey frames, in grey levels (0..255)."""

    def __init__(self, width: int = MOTION_WIDTH) -> None:
        self.width = width
        self._prev: np.ndarray | None = None

    def update(self, image: np.ndarray) -> float:
        g = grey_small(image, self.width)
        prev, self._prev = self._prev, g
        if prev is None or prev.shape != g.shape:
            return 0.0
        return float(np.abs(g - prev).mean())


@dataclass(frozen=True)
class BarcodeHit:
    format: str  # "EAN13", "EAN8", "UPCA", "UPCE"
    text: str


class BarcodeReader:
    """zxing-cpp restricted to retail formats (EAN/UPC): keeps decoding to 1-2 ms per frame."""

    def __init__(self) -> None:
        import zxingcpp

        self._zx = zxingcpp
        self._formats = (zxingcpp.BarcodeFormat.EAN13 | zxingcpp.BarcodeFormat.EAN8
                         | zxingcpp.BarcodeFormat.UPCA | zxingcpp.BarcodeFormat.UPCE)

    def read(self, image: np.ndarray) -> list[BarcodeHit]:
        grey = image if image.ndim == 2 else image.mean(axis=2).astype(np.uint8)
        hits = self._zx.read_barcodes(np.ascontiguousarray(grey), formats=self._formats)
        return [BarcodeHit(_format_name(h.format), h.text) for h in hits if h.valid and h.text]


def _format_name(fmt: object) -> str:
    name = getattr(fmt, "name", None) or str(fmt)
    return name.split(".")[-1]


class WeightTracker:
    """Change of the cart's weight over the last `window_s` seconds (grams, signed)."""

    def __init__(self, window_s: float = 1.0) -> None:
        self.window_s = window_s
        self._hist: deque[tuple[float, float]] = deque()

    def update(self, t: float, grams: float | None) -> float | None:
        if grams is None or not np.isfinite(grams):
            return None
        self._hist.append((t, float(grams)))
        while len(self._hist) > 1 and self._hist[0][0] < t - self.window_s:
            self._hist.popleft()
        return float(grams) - self._hist[0][1]


@dataclass
class SignalFrame:
    """Everything the rules can look at for one frame; None means "not computed / not available"."""

    prediction: str | None = None
    confidence: float = 1.0
    motion: float | None = None
    barcodes: list[BarcodeHit] = field(default_factory=list)
    weight_g: float | None = None
    weight_delta_g: float | None = None
    aisle: str | None = None
    store: str | None = None
    shadow_ran: bool = False  # a shadow (candidate) model also judged this frame
    shadow_prediction: str | None = None  # its top-1
    # set only on the frame that closes an insertion (edge_agent.insertion.InsertionTracker)
    insertion_label: str | None = None  # the insertion's decision (barcode, else the vote)
    insertion_confidence: float | None = None  # its confidence

    @property
    def barcode_text(self) -> str | None:
        return self.barcodes[0].text if self.barcodes else None

    def values(self) -> dict[str, float | str | bool | None]:
        """Flat signal values recorded with every firing (sidecar `triggers[].signals`)."""
        out: dict[str, float | str | bool | None] = {
            "prediction": self.prediction,
            "confidence": round(self.confidence, 4),
        }
        if self.motion is not None:
            out["motion"] = round(self.motion, 3)
        if self.barcodes:
            out["barcode"] = self.barcode_text
        if self.weight_delta_g is not None:
            out["weight_delta_g"] = round(self.weight_delta_g, 1)
        if self.shadow_ran:
            out["shadow_prediction"] = self.shadow_prediction
        if self.insertion_confidence is not None:
            out["insertion_label"] = self.insertion_label
            out["insertion_confidence"] = round(self.insertion_confidence, 4)
        return out


class WeightStepWatch:
    """Weight steps (an item in or out) the model saw nothing around, counted per step.

    Counting frames instead (a frame with a weight change the model called "empty") punished a
    model for being right: when the weight steps the item already lies in the basket, which is an
    empty frame, so a model better at empty carts fired it more (bench_flywheel's 10x canary:
    "worse by +1.63", rollout halted, on a candidate +14 points better). A step is consistent when
    the model named a product within `window_s` before or after it (it saw the item go in or come
    out); it is judged once that window has passed."""

    def __init__(self, threshold_g: float, window_s: float = 2.0) -> None:
        self.threshold_g, self.window_s = threshold_g, window_s
        self._in_step = False
        self._pending: list[float] = []  # onset times of steps not judged yet
        self._last_item_t: float | None = None

    def update(self, t: float, delta_g: float | None, saw_item: bool) -> tuple[int, int]:
        """Feed one frame; returns (steps judged now, of those inconsistent)."""
        if saw_item:
            self._last_item_t = t
        stepping = delta_g is not None and abs(delta_g) >= self.threshold_g
        if stepping and not self._in_step:
            self._pending.append(t)
        self._in_step = stepping
        judged = bad = 0
        for onset in list(self._pending):
            seen = self._last_item_t is not None and abs(self._last_item_t - onset) <= self.window_s
            if seen or t - onset > self.window_s:
                self._pending.remove(onset)
                judged += 1
                bad += not seen
        return judged, bad
