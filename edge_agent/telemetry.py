"""Counters shared by the inference loop, the capture worker and the uploader, and status reports.

Counting is a dict increment under a lock (sub-microsecond), so the inference loop pays nothing
measurable. `Telemetry.report()` turns a window of counters into a StatusReportV2 document
(V1 plus the OTA state and the health figures the release gates read).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from edge_agent.contract.schemas import HealthFigures, LatencyMs, OtaStateV2, StatusReportV2

LATENCY_WINDOW = 2048  # inference latencies kept for p50/p99


@dataclass
class Totals:
    """Monotonic counters since the agent started (what tests reconcile)."""

    frames: int = 0
    corrupt_frames: int = 0
    model_errors: int = 0
    source_errors: int = 0
    captures: int = 0
    drops: Counter = field(default_factory=Counter)  # cause -> captures dropped
    fires: Counter = field(default_factory=Counter)  # rule name -> firing frames
    capture_pauses: int = 0
    cleanups: int = 0
    spooled: int = 0
    uploaded_clips: int = 0
    uploaded_bytes: int = 0
    already_uploaded: int = 0  # sidecar found in the lake (re-upload after a restart): not double counted
    upload_failures: int = 0
    remote_repairs: int = 0  # lake objects that failed their checksums (cut, garbled) and were rewritten
    upload_seconds: float = 0.0
    status_failures: int = 0
    rule_reloads: int = 0
    rule_errors: int = 0
    model_reload_errors: int = 0  # a new model slot that failed to load (the old model kept running)
    shadow_frames: int = 0  # frames an OTA shadow (candidate) model also judged
    shadow_agree: int = 0  # of those, same top-1 as production
    shadow_errors: int = 0  # shadow model faults (the production path never notices)
    restarts: int = 0  # agent starts (1 per process)
    predictions: int = 0  # frames where the model named a product
    barcode_checked: int = 0  # frames with a barcode read, compared with the top-1 ("empty" disagrees)
    barcode_agree: int = 0  # of those, the model's top-1 is the barcode's SKU
    low_confidence: int = 0  # frames whose top-1 confidence is below the low-confidence mark
    weight_steps: int = 0  # weight steps (an item in or out) judged (triggers.signals.WeightStepWatch)
    weight_inconsistent: int = 0  # of those, the model named no product within the window around it
    validation_failures: int = 0  # OTA golden-input validations that failed
    insertions: int = 0  # insertions the device decided (edge_agent/insertion.py)
    insertions_low_confidence: int = 0  # of those, decided with confidence below the mark
    captures_withheld: int = 0  # frames a rule fired on in "updates" (privacy) mode: never captured
    federated_samples: int = 0  # auto-labelled samples (barcode + weight step) kept on the device

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items()}
        d["drops"] = dict(self.drops)
        d["fires"] = dict(self.fires)
        return d


class Telemetry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.totals = Totals()
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._window_start = time.monotonic()
        self._window_base = Totals()

    def add(self, name: str, n: int | float = 1) -> None:
        with self.lock:
            setattr(self.totals, name, getattr(self.totals, name) + n)

    def drop(self, cause: str, n: int = 1) -> None:
        with self.lock:
            self.totals.drops[cause] += n

    def fire(self, rule: str) -> None:
        with self.lock:
            self.totals.fires[rule] += 1

    def latency(self, ms: float) -> None:
        self._latencies.append(ms)  # deque.append is atomic; no lock in the hot path

    def latency_ms(self) -> tuple[float, float]:
        lat = np.fromiter(list(self._latencies), float)
        if not len(lat):
            return 0.0, 0.0
        p50, p99 = np.percentile(lat, [50, 99])
        return float(p50), float(p99)

    def snapshot(self) -> dict:
        with self.lock:
            d = self.totals.as_dict()
        p50, p99 = self.latency_ms()
        d["inference_latency_ms"] = {"p50": round(p50, 3), "p99": round(p99, 3)}
        return d

    def report(self, *, device_id: str, store_id: str, agent_version: str, model_version: str,
               rule_set_version: str, spool_bytes: int, spool_clips: int,
               now: datetime | None = None, ota: OtaStateV2 | None = None) -> StatusReportV2:
        """A status report over the window since the previous report (counters are deltas)."""
        with self.lock:
            cur = Totals(**{k: (Counter(v) if isinstance(v, Counter) else v)
                            for k, v in self.totals.__dict__.items()})
            base, self._window_base = self._window_base, cur
            started, self._window_start = self._window_start, time.monotonic()
        window = max(time.monotonic() - started, 1e-3)
        p50, p99 = self.latency_ms()
        up_s = cur.upload_seconds - base.upload_seconds
        up_b = cur.uploaded_bytes - base.uploaded_bytes
        health = HealthFigures(
            crashes=cur.model_errors - base.model_errors, restarts=cur.restarts - base.restarts,
            **{k: getattr(cur, k) - getattr(base, k) for k in (
                "validation_failures", "predictions", "barcode_checked", "barcode_agree",
                "low_confidence", "weight_steps", "weight_inconsistent", "shadow_frames", "shadow_agree",
                "insertions",
                "insertions_low_confidence")})
        return StatusReportV2(
            device_id=device_id, store_id=store_id, reported_at=now or datetime.now(UTC),
            agent_version=agent_version, model_version=model_version,
            rule_set_version=rule_set_version, window_s=round(window, 3),
            frames_processed=cur.frames - base.frames,
            fire_counts={k: v for k, v in (cur.fires - base.fires).items() if v > 0},
            captures=cur.captures - base.captures,
            drops={k: v for k, v in (cur.drops - base.drops).items() if v > 0},
            capture_pauses=cur.capture_pauses - base.capture_pauses,
            cleanups=cur.cleanups - base.cleanups,
            spool_bytes=spool_bytes, spool_clips=spool_clips,
            uploaded_clips=cur.uploaded_clips - base.uploaded_clips,
            uploaded_bytes=up_b,
            upload_bytes_per_s=round(up_b / up_s, 1) if up_s > 0 else 0.0,
            upload_failures=cur.upload_failures - base.upload_failures,
            inference_latency_ms=LatencyMs(p50=round(p50, 3), p99=round(p99, 3)),
            ota=ota, health=health,
        )
