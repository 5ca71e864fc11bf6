"""The uploader: spool -> lake, verified, exactly once, shaped to a bandwidth cap and time windows.

Per clip: put the clip with `if_absent` (content-addressed key), check the remote object (size, then
checksum: the S3 ETag when it is a plain MD5, else the bytes read back and hashed); then the sidecar
with `if_absent` (its presence tells the cloud the clip is complete); then the empty arrival marker
the cloud's sensor lists; only then delete the spooled files. Failures back off exponentially with
full jitter. Priority order: the spool hands out entries by (priority, age).

Nothing the lake already holds in good order is replaced: a clip that verifies is left alone (a
resume after a crash sends nothing twice), and a sidecar is kept only when its bytes are what this
device writes for the clip (its spooled bytes, or their canonical form): comparing a few fields
would keep a sidecar garbled in transit anywhere else, delete the spool entry, and leave the
Depot to quarantine the clip. Anything else is rewritten, and each such repair is counted.

The uploader is a niced thread of the agent process, not a child process like the encoder: its
work is I/O and hashing, which run without the GIL (hashlib, the object store client), so it
cannot hold the inference loop up the way a CPU-bound encoder thread can; the isolation benchmark
measures the loop with uploads running.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as dtime

from edge_agent.capture.spool import Spool, SpoolEntry
from edge_agent.contract import ContractError, dump_document, parse_sidecar
from edge_agent.contract.layout import arrival_key, parse_clip_key
from edge_agent.hooks import NO_FAULTS, FaultHooks
from edge_agent.lake import Lake, LakeError, ObjectExists
from edge_agent.osutil import lower_thread_priority
from edge_agent.telemetry import Telemetry

log = logging.getLogger(__name__)


class VerifyError(LakeError):
    """The remote object does not match what was sent (size or checksum)."""


class TokenBucket:
    """Bytes per second with a burst allowance; a request bigger than the bucket goes into debt,
    so the long-run rate stays exact whatever the object sizes."""

    def __init__(self, rate_bytes_per_s: float | None, burst_bytes: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate_bytes_per_s is not None and rate_bytes_per_s <= 0:
            raise ValueError(f"bandwidth cap must be positive, got {rate_bytes_per_s}")
        self.rate = rate_bytes_per_s
        self.burst = burst_bytes if burst_bytes is not None else (rate_bytes_per_s or 0) * 0.25
        self._clock, self._sleep = clock, sleep
        self._tokens = self.burst
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self, n: int, stop: threading.Event | None = None) -> float:
        """Take n bytes' worth of tokens, sleeping as needed; returns the seconds waited."""
        if self.rate is None:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            if stop is not None:
                stop.wait(wait)
            else:
                self._sleep(wait)
        return wait


_WINDOW_RE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


@dataclass(frozen=True)
class UploadWindows:
    """Allowed upload periods in UTC, e.g. ["22:00-06:00"]; empty = always."""

    windows: tuple[tuple[dtime, dtime], ...] = ()

    @classmethod
    def parse(cls, specs: Sequence[str]) -> UploadWindows:
        out = []
        for s in specs:
            m = _WINDOW_RE.match(str(s).strip())
            if not m:
                raise ValueError(f"upload window {s!r} must look like 'HH:MM-HH:MM'")
            h1, m1, h2, m2 = (int(x) for x in m.groups())
            if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59:
                raise ValueError(f"upload window {s!r}: not a time of day")
            end = dtime(23, 59, 59, 999999) if h2 == 24 else dtime(h2, m2)
            out.append((dtime(h1, m1), end))
        return cls(tuple(out))

    def open_at(self, now: datetime) -> bool:
        if not self.windows:
            return True
        t = now.astimezone(UTC).time()
        for a, b in self.windows:
            if (a <= t < b) if a <= b else (t >= a or t < b):  # b < a wraps past midnight
                return True
        return False


class Backoff:
    """Exponential backoff with full jitter (AWS architecture blog): sleep U(0, min(cap, base*2^n))."""

    def __init__(self, base_s: float = 0.2, cap_s: float = 30.0, rng: random.Random | None = None):
        self.base_s, self.cap_s = base_s, cap_s
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        self.failures += 1
        return self._rng.uniform(0.0, min(self.cap_s, self.base_s * 2 ** min(self.failures, 30)))

    def reset(self) -> None:
        self.failures = 0


def _md5_etag(etag: str | None) -> str | None:
    if not etag:
        return None
    e = etag.strip('"').lower()
    return e if re.fullmatch(r"[0-9a-f]{32}", e) else None


def verify_remote(lake: Lake, key: str, data: bytes, sha256: str) -> None:
    """Raise VerifyError unless the remote object is exactly `data`."""
    info = lake.head(key)
    if info.size != len(data):
        raise VerifyError(f"{key}: remote size {info.size} != local {len(data)}")
    md5 = _md5_etag(info.etag)
    if md5 is not None:
        if md5 != hashlib.md5(data, usedforsecurity=False).hexdigest():
            raise VerifyError(f"{key}: remote ETag {info.etag} does not match the local MD5")
        return
    if hashlib.sha256(lake.get(key)).hexdigest() != sha256:
        raise VerifyError(f"{key}: remote bytes do not match the local sha256")


def same_sidecar(remote: bytes, local: bytes) -> bool:
    """True when the lake's sidecar hashes to what this device writes: its spooled bytes, or
    their canonical form (`dump_document`, what the agent itself writes)."""
    if hashlib.sha256(remote).digest() == hashlib.sha256(local).digest():
        return True
    try:
        canonical = dump_document(parse_sidecar(local))
    except ContractError:
        return False
    return hashlib.sha256(remote).digest() == hashlib.sha256(canonical).digest()


class Uploader:
    def __init__(self, lake: Lake, spool: Spool, telemetry: Telemetry, *,
                 bucket: TokenBucket | None = None, windows: UploadWindows | None = None,
                 backoff: Backoff | None = None, niceness: int = 10,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 hooks: FaultHooks = NO_FAULTS) -> None:
        self.lake, self.spool, self.telemetry = lake, spool, telemetry
        self.bucket = bucket or TokenBucket(None)
        self.windows = windows or UploadWindows()
        self.backoff = backoff or Backoff()
        self.niceness = niceness
        self._now = now
        self.hooks = hooks
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="uploader", daemon=True)
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        with self.spool.changed:
            self.spool.changed.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        lower_thread_priority(self.niceness)
        while not self._stop.is_set():
            if not self.windows.open_at(self._now()):
                self._stop.wait(1.0)
                continue
            entry = self.spool.checkout()
            if entry is None:
                with self.spool.changed:
                    self.spool.changed.wait(0.5)
                continue
            try:
                self.upload(entry)
                self.backoff.reset()
            except (LakeError, OSError) as e:
                self.spool.release(entry)
                self.telemetry.add("upload_failures")
                self.last_error = str(e)
                delay = self.backoff.next_delay()
                log.warning("upload of %s failed (%s); retry in %.2fs", entry.name, e, delay)
                self._stop.wait(delay)

    def upload(self, entry: SpoolEntry) -> None:
        """Upload one spooled clip; on success the entry is gone from the spool."""
        start = time.monotonic()
        try:
            clip = entry.clip_path.read_bytes()
            side = entry.sidecar_path.read_bytes()
        except FileNotFoundError:
            # Deleted under us (an operator, a disk check): nothing left to upload, say so.
            self.spool.remove(entry)
            self.telemetry.drop("local_missing")
            return
        if len(clip) != entry.clip_size or hashlib.sha256(clip).hexdigest() != entry.sha256:
            # Local bit rot: uploading would publish a corrupt clip under a trusted id.
            self.spool.remove(entry)
            self.telemetry.drop("local_corrupt")
            return
        self.bucket.acquire(len(clip) + len(side), self._stop)
        if self._stop.is_set():
            self.spool.release(entry)
            return
        self._put_clip(entry.clip_key, clip, entry.sha256)
        self.hooks.between_clip_and_sidecar()
        already = self._put_sidecar(entry.sidecar_key, side, entry)
        # Last, the arrival marker: the cloud's sensor lists these (sorted by upload time) to find
        # new clips in O(new). A failure here retries the entry; the puts above are idempotent.
        ck = parse_clip_key(entry.sidecar_key)
        self.lake.put(arrival_key(datetime.now(UTC), ck.date, ck.store_id, ck.device_id, ck.clip_id,
                                  ck.layout), b"")
        self.spool.remove(entry)
        with self.telemetry.lock:
            t = self.telemetry.totals
            t.uploaded_clips += 1
            t.uploaded_bytes += len(clip) + len(side)
            t.upload_seconds += time.monotonic() - start
            if already:
                t.already_uploaded += 1

    def _put_clip(self, key: str, data: bytes, sha256: str) -> None:
        """Make `key` hold exactly `data`. The key is derived from the bytes, so a remote object that
        fails the checksum was never a valid clip (a cut or garbled write): only then is it replaced."""
        try:
            self.lake.put(key, data, if_absent=True)
        except ObjectExists:
            pass  # a previous attempt (or a lost ack) got it there: check it below
        try:
            verify_remote(self.lake, key, data, sha256)
        except VerifyError as e:
            self._repair(key, data, e)
            verify_remote(self.lake, key, data, sha256)

    def _put_sidecar(self, key: str, data: bytes, entry: SpoolEntry) -> bool:
        """Publish the sidecar unless an acceptable one is there; True when one already was."""
        try:
            self.lake.put(key, data, if_absent=True)
            already = False
        except ObjectExists:
            already = True
        remote = self.lake.get(key)
        if same_sidecar(remote, data):
            return already
        self._repair(key, data, VerifyError(f"{key}: remote sidecar differs from this device's"))
        if self.lake.get(key) != data:
            raise VerifyError(f"{key}: sidecar still wrong after repair")
        return False

    def _repair(self, key: str, data: bytes, why: Exception) -> None:
        """Overwrite an object that fails its checksums; counted and logged, never silent."""
        log.warning("repairing %s: %s", key, why)
        self.telemetry.add("remote_repairs")
        self.lake.put(key, data)

    def wait_drained(self, timeout: float) -> bool:
        """Block until the spool is empty (or timeout); True when drained."""
        return self.spool.wait_empty(timeout)
