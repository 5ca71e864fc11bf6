"""The capture worker: encodes finished captures into the spool, off the inference loop.

The inference loop hands over jobs with `submit()` (never blocks: a full queue drops the capture
and counts it as "queue_full"). The worker thread lowers its own OS priority, checks free disk,
encodes to a temp file, hashes it, and commits clip then sidecar into the spool.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time

from edge_agent.capture.encoder import encode_clip, probe_encoder
from edge_agent.capture.recorder import CaptureJob
from edge_agent.capture.sidecar import build_sidecar
from edge_agent.capture.spool import Spool
from edge_agent.contract import dump_document
from edge_agent.hooks import NO_FAULTS, FaultHooks
from edge_agent.osutil import lower_thread_priority
from edge_agent.telemetry import Telemetry

log = logging.getLogger(__name__)

# "thread": encode on a niced thread of the agent's process (light, in-process fakes work);
# "process": encode in a niced child process (no GIL shared with the inference loop).
ISOLATION_MODES = ("thread", "process")


class CaptureWorker:
    def __init__(self, spool: Spool, telemetry: Telemetry, *, device_id: str, store_id: str,
                 agent_version: str, queue_size: int = 4, niceness: int = 10,
                 encoders: tuple[str, ...] | None = None, threads: int = 1,
                 isolation: str = "thread", hooks: FaultHooks = NO_FAULTS) -> None:
        if queue_size < 1:
            raise ValueError(f"capture queue size must be >= 1, got {queue_size}")
        if isolation not in ISOLATION_MODES:
            raise ValueError(f"capture isolation must be one of {ISOLATION_MODES}, got {isolation!r}")
        self.spool, self.telemetry = spool, telemetry
        self.device_id, self.store_id, self.agent_version = device_id, store_id, agent_version
        self.niceness, self.threads, self.hooks = niceness, threads, hooks
        self.codec = probe_encoder(encoders) if encoders is not None else probe_encoder()
        self._q: queue.Queue[CaptureJob | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="capture-worker", daemon=True)
        self.isolation = isolation
        self._encoder = None
        if isolation == "process":
            from edge_agent.capture.encoder_process import EncoderProcess

            self._encoder = EncoderProcess(niceness=niceness, codec=self.codec, threads=threads,
                                           device_id=device_id, store_id=store_id,
                                           agent_version=agent_version, hooks=hooks)

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: CaptureJob) -> bool:
        """Called from the inference loop: O(1), never blocks."""
        try:
            self._q.put_nowait(job)
            return True
        except queue.Full:
            self.telemetry.drop("queue_full")
            return False

    @property
    def idle(self) -> bool:
        return self._q.unfinished_tasks == 0  # counts queued and in-progress captures

    def wait_idle(self, timeout: float) -> bool:
        """Block until every submitted capture is encoded (or dropped); True when idle."""
        deadline = time.monotonic() + timeout
        while not self.idle:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def stop(self, drain: bool = True, timeout: float = 60.0) -> None:
        if not drain:
            try:
                while True:
                    job = self._q.get_nowait()
                    self._q.task_done()
                    if job is not None:
                        self.telemetry.drop("shutdown")
            except queue.Empty:
                pass
        self._q.put(None)
        self._thread.join(timeout)
        if self._encoder is not None:
            self._encoder.close()

    def _run(self) -> None:
        lower_thread_priority(self.niceness)
        while True:
            job = self._q.get()
            if job is None:
                self._q.task_done()
                return
            try:
                self.process(job)
            except Exception:  # one bad capture must never kill the worker
                log.exception("capture %d failed", job.seq)
                self.telemetry.drop("encode_error")
            finally:
                self._q.task_done()

    def process(self, job: CaptureJob) -> None:
        if self.spool.disk_low():
            self.telemetry.add("capture_pauses")
            self.telemetry.drop("disk_low")
            return
        created_ns = time.time_ns()
        tmp = self.spool.tmp_path(f"{created_ns}-{job.seq}.mp4.part")
        half = len(job.frames) // 2
        try:
            if self._encoder is not None:
                data_size, side_bytes = self._encoder.encode(job, tmp)
            else:
                clip = encode_clip([r.image for r in job.frames], [r.t for r in job.frames], tmp,
                                   codec=self.codec, threads=self.threads,
                                   on_frame=lambda i: self.hooks.mid_encode() if i == half else None)
                data_size = tmp.stat().st_size
                digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
                sidecar = build_sidecar(job, sha256=digest, size=data_size, clip=clip,
                                        device_id=self.device_id, store_id=self.store_id,
                                        agent_version=self.agent_version)
                side_bytes = dump_document(sidecar)
            admitted, evicted = self.spool.make_room(data_size + len(side_bytes))
            for _ in evicted:
                self.telemetry.add("cleanups")
                self.telemetry.drop("evicted")
            if not admitted:
                self.telemetry.drop("spool_full")
                return
            self.spool.commit(tmp, side_bytes, created_ns)
            self.telemetry.add("spooled")
        finally:
            tmp.unlink(missing_ok=True)
