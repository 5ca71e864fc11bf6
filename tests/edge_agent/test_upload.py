"""The uploader: token bucket, windows, backoff, verification, and faults that lie, cut and garble."""

from __future__ import annotations

import hashlib
import random
import threading
from datetime import UTC, datetime

import pytest

from edge_agent.capture.spool import Spool
from edge_agent.contract import dump_document, parse_sidecar
from edge_agent.contract.layout import LANDING_ARRIVALS, parse_arrival_key
from edge_agent.telemetry import Telemetry
from edge_agent.upload import (
    Backoff,
    TokenBucket,
    Uploader,
    UploadWindows,
    VerifyError,
    verify_remote,
)
from tests.edge_agent.conftest import lake_clips
from tests.edge_agent.test_capture import make_job, spool_one
from tests.support.faulty_lake import FaultyLake


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_token_bucket_holds_the_long_run_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000.0, burst_bytes=500, clock=clock, sleep=clock.sleep)
    sizes = [random.Random(k).randint(100, 3000) for k in range(200)]
    for n in sizes:
        bucket.acquire(n)
    # everything beyond the initial burst went out at exactly the cap
    assert clock.t == pytest.approx((sum(sizes) - 500) / 1000.0, rel=1e-9)
    assert TokenBucket(None).acquire(10**9) == 0.0
    with pytest.raises(ValueError):
        TokenBucket(-5)


def test_upload_windows() -> None:
    w = UploadWindows.parse(["22:00-06:00", "12:00-12:30"])
    at = lambda h, m: datetime(2026, 11, 25, h, m, tzinfo=UTC)  # noqa: E731
    assert w.open_at(at(23, 0)) and w.open_at(at(3, 0)) and w.open_at(at(12, 15))
    assert not w.open_at(at(8, 0)) and not w.open_at(at(12, 30))
    assert UploadWindows.parse([]).open_at(at(8, 0))
    for bad in ("25:00-01:00", "noon", "1:00-2:00"):
        with pytest.raises(ValueError, match="upload window"):
            UploadWindows.parse([bad])


def test_backoff_is_exponential_with_full_jitter() -> None:
    b = Backoff(base_s=0.1, cap_s=2.0, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(12)]
    bounds = [min(2.0, 0.1 * 2 ** (k + 1)) for k in range(12)]
    assert all(0 <= d <= hi for d, hi in zip(delays, bounds, strict=True))
    assert len(set(delays)) == 12  # jittered, not a fixed ladder
    b.reset()
    assert b.failures == 0


def test_verify_remote_catches_size_and_content(local_lake) -> None:
    data = b"x" * 1000
    local_lake.put("a/b.mp4", data)
    verify_remote(local_lake, "a/b.mp4", data, hashlib.sha256(data).hexdigest())
    local_lake.put("a/b.mp4", b"y" * 1000)
    with pytest.raises(VerifyError, match="sha256"):
        verify_remote(local_lake, "a/b.mp4", data, hashlib.sha256(data).hexdigest())
    local_lake.put("a/b.mp4", b"short")
    with pytest.raises(VerifyError, match="size"):
        verify_remote(local_lake, "a/b.mp4", data, hashlib.sha256(data).hexdigest())


def _fill_spool(tmp_path, n: int) -> Spool:
    spool = Spool(tmp_path / "spool", cap_bytes=10**9)
    for k in range(n):
        spool_one(spool, make_job(seed=k, priority=k % 3), tmp_path, 1000 + k)
    return spool


def assert_lake_consistent(lake, expected: int) -> None:
    """Every sidecar's clip is there, complete and matches its checksum; no stray objects."""
    clips, sidecars = lake_clips(lake)
    assert len(sidecars) == expected and len(clips) == expected
    for key in sidecars:
        sc = parse_sidecar(lake.get(key))
        data = lake.get(key[:-5] + ".mp4")
        assert len(data) == sc.clip.size_bytes
        assert hashlib.sha256(data).hexdigest() == sc.clip.sha256
    # Each clip is announced in the arrival log, after its sidecar (retries may repeat a marker).
    announced = {parse_arrival_key(o.key)[1].sidecar_key for o in lake.list(LANDING_ARRIVALS)}
    assert announced == set(sidecars)


def test_uploads_survive_random_faults_exactly_once(tmp_path, local_lake) -> None:
    spool = _fill_spool(tmp_path, 8)
    faulty = FaultyLake(local_lake, rate=0.4, seed=3)
    tel = Telemetry()
    up = Uploader(faulty, spool, tel, backoff=Backoff(0.01, 0.05))
    up.start()
    assert up.wait_drained(60)
    up.stop()
    assert sum(faulty.injected.values()) > 5
    assert set(faulty.injected) >= {"error", "cut", "garble", "lost_ack"}
    assert tel.totals.uploaded_clips == 8 and tel.totals.upload_failures > 0
    assert tel.totals.remote_repairs > 0  # garbled and cut writes were found by checksum and rewritten
    assert len(spool) == 0
    assert_lake_consistent(local_lake, 8)


def test_priority_order_and_restart_resume(tmp_path, local_lake) -> None:
    spool = _fill_spool(tmp_path, 6)
    order: list[int] = []
    tel = Telemetry()
    up = Uploader(local_lake, spool, tel)
    # upload two by hand (what the thread does), in the spool's order: priority, then age
    for _ in range(2):
        e = spool.checkout()
        order.append(e.priority)
        up.upload(e)
    assert order == [0, 0]
    # a crash after the sidecar landed but before the spool entry was removed: re-upload is a no-op
    e = spool.checkout()
    local_lake.put(e.clip_key, e.clip_path.read_bytes())
    local_lake.put(e.sidecar_key, e.sidecar_path.read_bytes())
    spool.release(e)
    restarted = Spool(tmp_path / "spool", cap_bytes=10**9)
    assert restarted.scan() == 4
    tel2 = Telemetry()
    up2 = Uploader(local_lake, restarted, tel2)
    up2.start()
    assert up2.wait_drained(30)
    up2.stop()
    assert tel2.totals.uploaded_clips == 4 and tel2.totals.already_uploaded == 1
    assert_lake_consistent(local_lake, 6)


def test_uploader_waits_for_its_window(tmp_path, local_lake) -> None:
    spool = _fill_spool(tmp_path, 1)
    now = [datetime(2026, 11, 25, 8, 0, tzinfo=UTC)]
    up = Uploader(local_lake, spool, Telemetry(), windows=UploadWindows.parse(["22:00-06:00"]),
                  now=lambda: now[0])
    up.start()
    assert not up.wait_drained(1.5)
    assert len(spool) == 1 and lake_clips(local_lake) == ([], [])
    now[0] = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
    assert up.wait_drained(10)
    up.stop()
    assert_lake_consistent(local_lake, 1)


def test_stop_interrupts_bandwidth_wait(tmp_path, local_lake) -> None:
    spool = _fill_spool(tmp_path, 3)
    up = Uploader(local_lake, spool, Telemetry(), bucket=TokenBucket(10.0, burst_bytes=1))
    up.start()
    t = threading.Timer(0.5, up.stop)
    t.start()
    t.join()
    up._thread.join(10)
    assert not up._thread.is_alive()
    assert len(spool) == 3  # nothing was lost by stopping mid-wait


def test_entry_deleted_under_the_uploader_is_dropped_with_a_cause(tmp_path, local_lake) -> None:
    spool = _fill_spool(tmp_path, 2)
    spool.entries()[0].clip_path.unlink()
    tel = Telemetry()
    up = Uploader(local_lake, spool, tel)
    up.start()
    assert up.wait_drained(30)
    up.stop()
    assert tel.totals.drops == {"local_missing": 1} and tel.totals.uploaded_clips == 1


@pytest.mark.integration
@pytest.mark.parametrize("lake_fixture", ["local_lake", "s3_lake"])
def test_the_sidecar_in_the_lake_is_kept_only_when_it_is_byte_for_byte_ours(tmp_path, request,
                                                                          lake_fixture: str) -> None:
    lake = request.getfixturevalue(lake_fixture)
    spool = _fill_spool(tmp_path, 2)
    same, garbled = spool.entries()
    # a resume after a crash: clip and sidecar already there, exactly as this device writes them
    lake.put(same.clip_key, same.clip_path.read_bytes())
    lake.put(same.sidecar_key, same.sidecar_path.read_bytes())
    # a sidecar garbled in transit in a field other than id, size and sha256: it still parses
    # and names the same clip, but it is not what this device wrote
    lake.put(garbled.clip_key, garbled.clip_path.read_bytes())
    theirs = parse_sidecar(garbled.sidecar_path.read_bytes()).model_copy(update={"agent_version": "0.0.0-x"})
    lake.put(garbled.sidecar_key, dump_document(theirs))
    ours = garbled.sidecar_path.read_bytes()
    counted = FaultyLake(lake)  # no faults: counts the puts that reach the store
    tel = Telemetry()
    up = Uploader(counted, spool, tel)
    for _ in range(2):
        up.upload(spool.checkout())
    assert counted.puts[same.clip_key] == 0 and counted.puts[same.sidecar_key] == 0  # nothing resent
    assert lake.get(garbled.sidecar_key) == ours  # repaired, not kept
    assert tel.totals.remote_repairs == 1 and tel.totals.already_uploaded == 1 and len(spool) == 0
    assert_lake_consistent(lake, 2)


@pytest.mark.integration
@pytest.mark.parametrize("lake_fixture", ["local_lake", "s3_lake"])
def test_garbled_remote_objects_are_repaired_and_counted(tmp_path, request, lake_fixture: str) -> None:
    lake = request.getfixturevalue(lake_fixture)
    spool = _fill_spool(tmp_path, 2)
    cut, garbled = spool.entries()
    clip = bytearray(garbled.clip_path.read_bytes())
    clip[100] ^= 0xFF  # same size, one bit pattern off: only the checksum can tell
    lake.put(garbled.clip_key, bytes(clip))
    lake.put(garbled.sidecar_key, garbled.sidecar_path.read_bytes()[:-40])  # torn JSON
    lake.put(cut.clip_key, cut.clip_path.read_bytes()[:500])  # a cut write, no sidecar yet
    # A sidecar at this key that parses but names other bytes is not this clip's sidecar either.
    other = parse_sidecar(cut.sidecar_path.read_bytes())
    wrong = other.model_copy(update={"clip": other.clip.model_copy(update={"size_bytes": 500})})
    lake.put(cut.sidecar_key, dump_document(wrong))
    ours = {e.sidecar_key: e.sidecar_path.read_bytes() for e in (cut, garbled)}
    tel = Telemetry()
    up = Uploader(lake, spool, tel)
    for _ in range(2):
        up.upload(spool.checkout())
    assert tel.totals.remote_repairs == 4 and tel.totals.uploaded_clips == 2 and len(spool) == 0
    assert {k: lake.get(k) for k in ours} == ours
    assert_lake_consistent(lake, 2)


@pytest.mark.integration
def test_large_clip_goes_up_in_parts_and_is_verified_by_its_bytes(tmp_path, s3_lake, monkeypatch) -> None:
    import edge_agent.lake as lake_module
    from edge_agent.capture.encoder import EncodedClip
    from edge_agent.capture.sidecar import build_sidecar

    monkeypatch.setattr(lake_module, "MULTIPART_THRESHOLD", 1024 * 1024)
    monkeypatch.setattr(lake_module, "PART_SIZE", 5 * 1024 * 1024)  # the S3 minimum part size
    spool = Spool(tmp_path / "spool", cap_bytes=10**9)
    data = random.Random(0).randbytes(11 * 1024 * 1024)  # three parts
    tmp = spool.tmp_path("big.part")
    tmp.write_bytes(data)
    sc = build_sidecar(make_job(), sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                       clip=EncodedClip("h264", 320, 240, 10.0, 8, 0.8), device_id="cart-1",
                       store_id="A", agent_version="t")
    entry = spool.commit(tmp, dump_document(sc), 1)
    tel = Telemetry()
    Uploader(s3_lake, spool, tel).upload(spool.checkout())
    # A multipart ETag is not the object's MD5, so the uploader read the bytes back to verify them.
    assert s3_lake.head(entry.clip_key).etag.strip('"').endswith("-3")
    assert tel.totals.uploaded_clips == 1 and len(spool) == 0
    assert_lake_consistent(s3_lake, 1)
