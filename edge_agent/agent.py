"""The agent: the inference loop plus its off-loop helpers (capture worker, uploader, housekeeping).

The inference loop (`process`) runs the device model on every frame, computes the signals the
active rules need (the barcode read always: health and insertions use it), evaluates the rules,
and feeds the pre/post-roll recorder. Everything slow
(encoding, disk, network, status reports, rule and model reloads) runs at lower OS priority off the
loop: encoding in a child process by default (CPU-bound work must not share the loop's GIL), the
uploader and housekeeping on threads (I/O and hashing, which release the GIL). The loop only ever
does an O(1) non-blocking hand-off.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from edge_agent.capture.recorder import CaptureJob, Firing, FrameRecord, Recorder
from edge_agent.capture.spool import Spool, atomic_write
from edge_agent.capture.worker import CaptureWorker
from edge_agent.config import CaptureConfig, FederatedConfig, UploadConfig
from edge_agent.contract import dump_document
from edge_agent.contract.layout import status_key
from edge_agent.hooks import NO_FAULTS, FaultHooks
from edge_agent.insertion import InsertionTracker
from edge_agent.lake import Lake, LakeError
from edge_agent.model import Prediction
from edge_agent.osutil import lower_thread_priority
from edge_agent.sources import Frame, check_frame
from edge_agent.telemetry import Telemetry
from edge_agent.triggers.rules import (
    DEFAULT_LOW_CONFIDENCE,
    DEFAULT_WEIGHT_CHANGE_G,
    RuleSet,
    RuleSetWatcher,
    same_sku,
)
from edge_agent.triggers.signals import (
    BarcodeReader,
    MotionDetector,
    SignalFrame,
    WeightStepWatch,
    WeightTracker,
)
from edge_agent.upload import Backoff, TokenBucket, Uploader, UploadWindows

log = logging.getLogger(__name__)

AGENT_VERSION = "0.1.0"


class Predictor(Protocol):
    version: str

    def predict(self, image) -> Prediction: ...


class Agent:
    def __init__(self, *, device_id: str, store_id: str, model: Predictor, rules: RuleSet,
                 spool: Spool, lake: Lake | None, capture: CaptureConfig | None = None,
                 upload: UploadConfig | None = None, status_interval_s: float = 60.0,
                 rules_watcher: RuleSetWatcher | None = None, rules_reload_s: float = 5.0,
                 model_loader: Callable[[], Predictor | None] | None = None,
                 telemetry: Telemetry | None = None, hooks: FaultHooks = NO_FAULTS,
                 federated: FederatedConfig | None = None) -> None:
        self.device_id, self.store_id = device_id, store_id
        self.model = model
        self.rules = rules
        self.spool = spool
        self.lake = lake
        self.telemetry = telemetry or Telemetry()
        cap = capture or CaptureConfig()  # the agent's config objects: one set of defaults
        up = upload or UploadConfig()
        self.recorder = Recorder(cap.pre_roll_s, cap.post_roll_s, cap.max_clip_s, cap.copy_frames)
        self.worker = CaptureWorker(spool, self.telemetry, device_id=device_id, store_id=store_id,
                                    agent_version=AGENT_VERSION, queue_size=cap.queue_size,
                                    niceness=cap.niceness, encoders=tuple(cap.encoders),
                                    threads=cap.encoder_threads, isolation=cap.isolation,
                                    hooks=hooks)
        self.uploader = None
        # "updates" (privacy) mode: no frame is ever captured, so no clip can reach the lake
        self.capture_enabled = up.mode == "clips"
        if lake is not None and self.capture_enabled:
            self.uploader = Uploader(
                lake, spool, self.telemetry,
                bucket=TokenBucket(up.bandwidth_bytes_per_s or None, up.burst_bytes or None),
                windows=UploadWindows.parse(tuple(up.windows)),
                backoff=Backoff(up.backoff_base_s, up.backoff_cap_s), niceness=up.niceness,
                hooks=hooks)
        self.status_interval_s = status_interval_s
        self.rules_watcher, self.rules_reload_s = rules_watcher, rules_reload_s
        self.model_loader = model_loader  # a new Predictor when the active slot changed, else None
        self.shadow: Predictor | None = None  # OTA shadow mode: a candidate run beside `model`
        self.ota = None  # an edge_agent.ota.OtaUpdater: checked in housekeeping, fed in probation
        self._ota_reported: str | None = None
        self.ota_check_s = 300.0  # how often housekeeping asks the release channel; 0: caller drives
        self._motion = MotionDetector()
        self._barcodes: BarcodeReader | None = None
        self._weight = WeightTracker()
        self._steps = WeightStepWatch(DEFAULT_WEIGHT_CHANGE_G)
        self.insertions = InsertionTracker()  # one decision per insertion (sidecar V2, triggers)
        self._epoch: datetime | None = None
        self._last_t: float | None = None
        self._stop = threading.Event()
        self._house = threading.Thread(target=self._housekeeping, name="housekeeping", daemon=True)
        self._started = False
        self.recovered = 0
        self.federated = None  # an edge_agent.federated.runtime.FederatedLearner when configured
        if federated is not None and federated.channel:
            from edge_agent.federated.runtime import FederatedLearner

            if lake is None:
                raise ValueError("federated learning reads the channel's signed round announcements: "
                                 "the agent needs a lake")
            self.federated = FederatedLearner(federated, device_id=device_id, store_id=store_id, lake=lake)

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> Agent:
        self.recovered = self.spool.scan()  # resume after a restart: partials out, complete ones queued
        if self.capture_enabled:
            self.worker.start()
        if self.federated is not None:
            self.federated.start()
        if self.uploader is not None:
            self.uploader.start()
        self.telemetry.add("restarts")
        self._house.start()
        self._started = True
        return self

    def close(self, *, drain_timeout: float = 0.0) -> dict:
        """Stop: flush the open capture, let the encoder finish, optionally wait for uploads."""
        self.flush_capture()
        if self.capture_enabled:
            self.worker.stop(drain=True)
        if self.federated is not None:
            self.federated.stop()
        if self.uploader is not None and drain_timeout > 0:
            self.uploader.wait_drained(drain_timeout)
        if self.uploader is not None:
            self.uploader.stop()
        self._stop.set()
        if self._house.is_alive():
            self._house.join(10)
        self.publish_status()
        return self.telemetry.snapshot()

    def __enter__(self) -> Agent:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the inference loop -----------------------------------------------------------------------

    def run(self, frames: Iterable[Frame], *, stop: threading.Event | None = None,
            max_frames: int | None = None) -> int:
        n = 0
        for frame in frames:
            if (stop is not None and stop.is_set()) or self._stop.is_set():
                break
            self.process(frame)
            n += 1
            if max_frames is not None and n >= max_frames:
                break
        return n

    def process(self, frame: Frame) -> list[Firing]:
        """One frame through model, signals, rules and the ring buffer. Never blocks on I/O."""
        why = check_frame(frame)
        if why is not None:
            self.telemetry.add("corrupt_frames")
            log.warning("skipping corrupt frame: %s", why)
            return []
        image = frame.image
        if self._last_t is not None and frame.t < self._last_t:
            # The source restarted its clock (a new file, a reconnect without offsets): close the
            # open capture so no clip mixes two timelines, and forget time-based history.
            self.flush_capture()
            self._weight = WeightTracker()
            self._steps = WeightStepWatch(DEFAULT_WEIGHT_CHANGE_G)
            self.insertions.close()  # an insertion never spans two timelines
            self._epoch = None
        self._last_t = frame.t
        model = self.model  # one read, like the rules: a hot swap lands between frames
        try:
            pred = model.predict(image)
        except Exception as e:  # a model fault costs this frame, never the loop
            self.telemetry.add("model_errors")
            if self.ota is not None:
                self.ota.record_crash(f"model failed on a frame: {e}")
            log.error("model failed on a frame: %s", e)
            return []
        self.telemetry.latency(pred.latency_ms)
        if self.ota is not None:
            self.ota.record_frame(pred.latency_ms)  # counts only while the model is on probation
        rules = self.rules  # one read: a hot reload swaps the attribute between frames
        need = rules.signals
        fed = self.federated
        if fed is not None:  # its labels need the weight step and motion on every frame
            need = need | {"weight", "motion"}
        sf = SignalFrame(prediction=pred.label, confidence=pred.confidence, weight_g=frame.weight_g,
                         aisle=frame.location[0] if frame.location else None, store=self.store_id)
        if "motion" in need:
            sf.motion = self._motion.update(image)
        # the barcode read runs on every frame whatever the rules say: the rollout's agreement check,
        # the insertion's fusion and federated labels use it (1-2 ms; read only for the rules,
        # bench_flywheel's canaries saw 0/0 barcode checks and every 4-cart rollout held)
        if self._barcodes is None:
            self._barcodes = BarcodeReader()
        sf.barcodes = self._barcodes.read(image)
        if "weight" in need:
            sf.weight_delta_g = self._weight.update(frame.t, frame.weight_g)
        insertion = self.insertions.update(frame.t, pred.distribution(),
                                           [b.text for b in sf.barcodes])
        if insertion is not None:
            sf.insertion_label, sf.insertion_confidence = insertion.label, insertion.confidence
        self._health(pred, sf, insertion, frame.t)
        if fed is not None:
            added = fed.observe(model, pred, sf, frame.t)
            if added:
                self.telemetry.add("federated_samples", added)
        shadow = self.shadow  # OTA shadow mode: the candidate judges the same frame, never acts
        if shadow is not None:
            try:
                sp = shadow.predict(image)
                sf.shadow_ran, sf.shadow_prediction = True, sp.label
                self.telemetry.add("shadow_frames")
                self.telemetry.add("shadow_agree", int(sp.label == pred.label))
            except Exception as e:  # a shadow fault never costs the production path
                self.telemetry.add("shadow_errors")
                log.error("shadow model failed on a frame: %s", e)
        firings = []
        fired = rules.evaluate(sf)
        if fired:
            values = sf.values()
            for rule, value in fired:
                firings.append(Firing(rule.name, rule.expr, rule.priority, value, values))
                self.telemetry.fire(rule.name)
        if frame.wall is not None:
            wall = frame.wall
        else:
            if self._epoch is None:
                self._epoch = datetime.now(UTC) - timedelta(seconds=frame.t)
            wall = self._epoch + timedelta(seconds=frame.t)
        if self.capture_enabled:
            rec = FrameRecord(image, frame.t, wall, pred.label, pred.confidence, sf.barcodes,
                              frame.weight_g, frame.location, firings, insertion)
            self._submit(self.recorder.push(rec, model.version, rules.version))
        elif firings:
            self.telemetry.add("captures_withheld")  # a rule fired; privacy mode keeps the frames
        self.telemetry.add("frames")
        return firings

    def _health(self, pred, sf: SignalFrame, insertion, t_s: float) -> None:
        """Model-quality proxies for the release gates: top-1 vs the barcode read on the same frame
        (an "empty" prediction there counts as a disagreement: a weak model saying "empty" everywhere
        otherwise gave the canary gate 0 checks and held every rollout of the 4-cart demo),
        low confidence, and weight steps the model saw no product around (per step:
        `WeightStepWatch`); insertions decided and how many of them were uncertain."""
        t = self.telemetry
        if insertion is not None:
            t.add("insertions")
            if insertion.confidence < DEFAULT_LOW_CONFIDENCE:
                t.add("insertions_low_confidence")
        if pred.label is not None:
            t.add("predictions")
        if sf.barcodes:  # a read proves an item is in view: "empty" there disagrees, it is no gap
            t.add("barcode_checked")
            t.add("barcode_agree", int(pred.label is not None and same_sku(sf.barcodes[0].text, pred.label)))
        if pred.confidence < DEFAULT_LOW_CONFIDENCE:
            t.add("low_confidence")
        steps, unseen = self._steps.update(t_s, sf.weight_delta_g, pred.label is not None)
        if steps:
            t.add("weight_steps", steps)
            t.add("weight_inconsistent", unseen)

    def flush_capture(self) -> None:
        """Close the capture in progress now (end of stream, a clock jump) and hand it to the encoder."""
        if not self.capture_enabled:
            return
        self._submit(self.recorder.flush(self.model.version, self.rules.version))

    def _submit(self, job: CaptureJob | None) -> None:
        if job is not None:
            last = job.frames[-1]
            if last.insertion is None and self.insertions.open:
                # the clip ends mid-insertion: its sidecar records the decision so far, marked
                # open (the closing frame, in a later clip or none, records the final one). A
                # copy: the ring buffer may hand the same record to the next clip's pre-roll
                job.frames = [*job.frames[:-1], dataclasses.replace(last, insertion=self.insertions.peek())]
            self.telemetry.add("captures")
            self.worker.submit(job)

    # -- housekeeping: status, rule and model reloads ---------------------------------------------

    def set_rules(self, rules: RuleSet) -> None:
        self.rules = rules
        self.telemetry.add("rule_reloads")
        log.info("rule set %s active", rules.version)

    def _housekeeping(self) -> None:
        lower_thread_priority(10)
        next_status = time.monotonic() + self.status_interval_s
        next_rules = time.monotonic() + self.rules_reload_s
        next_ota = time.monotonic()
        while not self._stop.wait(0.2):
            now = time.monotonic()
            if now >= next_rules:
                next_rules = now + self.rules_reload_s
                self.reload_rules()
                self.reload_model()
            if self.ota is not None and self.ota_check_s > 0 and now >= next_ota:
                next_ota = now + self.ota_check_s
                try:
                    self.check_ota()
                except Exception as e:  # an OTA bug must never stop housekeeping
                    log.error("OTA check failed: %s", e)
            if now >= next_status:
                next_status = now + self.status_interval_s
                self.publish_status()

    def reload_rules(self) -> bool:
        if self.rules_watcher is None:
            return False
        new = self.rules_watcher.poll()
        if self.rules_watcher.last_error:
            self.telemetry.add("rule_errors")
            log.error("rule file rejected, keeping %s: %s", self.rules.version,
                      self.rules_watcher.last_error)
            self.rules_watcher.last_error = None
        if new is not None:
            self.set_rules(new)
            return True
        return False

    def reload_model(self) -> bool:
        """Swap in the active slot's model when it changed (OTA); True when a new model is live."""
        if self.model_loader is None:
            return False
        try:
            new = self.model_loader()
        except Exception as e:  # a broken new slot must not take the running model down
            self.telemetry.add("model_reload_errors")
            log.error("model reload failed, keeping %s: %s", self.model.version, e)
            return False
        if new is None:
            return False
        self.model = new
        log.info("model %s active", new.version)
        return True

    def check_ota(self) -> str | None:
        """One OTA step (housekeeping calls it): check the channel or judge probation, then load
        what the updater activated; the shadow model follows the updater's shadow release."""
        if self.ota is None:
            return None
        if self.ota.on_state is None:
            self.ota.on_state = self._ota_step
        state = self.ota.check()
        if state == "failed" and "golden validation" in self.ota.rec.detail:
            self.telemetry.add("validation_failures")
        self.reload_model()
        shadow_dir = self.ota.shadow_dir
        if shadow_dir is None:
            self.shadow = None
        elif self.shadow is None or getattr(self.shadow, "slot", None) != shadow_dir:
            from edge_agent.model import DeviceModel

            self.shadow = DeviceModel(shadow_dir)
        return state

    def _ota_step(self, state: str) -> None:
        """A status report at each OTA state change (only the housekeeping thread changes state; the
        inference thread's probation counters never trigger a report)."""
        if state != self._ota_reported:
            self._ota_reported = state
            self.publish_status()

    def status_document(self) -> bytes:
        report = self.telemetry.report(
            device_id=self.device_id, store_id=self.store_id, agent_version=AGENT_VERSION,
            model_version=self.model.version, rule_set_version=self.rules.version,
            spool_bytes=self.spool.used_bytes, spool_clips=len(self.spool),
            ota=self.ota.status() if self.ota is not None else None)
        return dump_document(report)

    def publish_status(self) -> bool:
        """Write a status report to the lake and a local status.json (for `edge-agent status`)."""
        doc = self.status_document()
        local = {"report": json.loads(doc), "totals": self.telemetry.snapshot(),
                 "spool_discarded": dict(self.spool.discarded),
                 "last_upload_error": self.uploader.last_error if self.uploader else None}
        try:
            atomic_write(Path(self.spool.root) / "status.json",
                         json.dumps(local, indent=2, default=str).encode())
        except OSError as e:
            log.warning("cannot write local status: %s", e)
        if self.lake is None:
            return False
        try:
            self.lake.put(status_key(self.device_id, datetime.now(UTC)), doc)
            return True
        except LakeError as e:
            self.telemetry.add("status_failures")
            log.warning("status report not uploaded: %s", e)
            return False
