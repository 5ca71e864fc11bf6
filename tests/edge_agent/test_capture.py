"""Capture: pre/post-roll ring buffer, H.264 encoding with probing, the spool and its recovery."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from edge_agent.capture.encoder import encode_clip, probe_encoder
from edge_agent.capture.recorder import CaptureJob, Firing, FrameRecord, Recorder
from edge_agent.capture.sidecar import build_sidecar
from edge_agent.capture.spool import Spool, atomic_write
from edge_agent.capture.worker import CaptureWorker
from edge_agent.contract import dump_document, parse_sidecar
from edge_agent.contract.layout import clip_id_for_bytes
from edge_agent.telemetry import Telemetry
from tests.edge_agent.conftest import scene

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def rec(i: int, fire: bool = False, fps: float = 10.0, priority: int = 5) -> FrameRecord:
    firings = [Firing("r", "motion", priority, 9.0, {"motion": 9.0})] if fire else []
    return FrameRecord(scene(i, moving=fire), i / fps, T0 + timedelta(seconds=i / fps), None, 0.9,
                       firings=firings, weight_g=1000.0, location=("A01", 2.0))


def test_recorder_pre_and_post_roll() -> None:
    r = Recorder(pre_roll_s=0.3, post_roll_s=0.5, max_clip_s=10)
    jobs = [j for i in range(40) if (j := r.push(rec(i, fire=i in (10, 12)), "m", "v")) is not None]
    assert len(jobs) == 1
    idx = [round(f.t * 10) for f in jobs[0].frames]
    assert idx == list(range(7, 18))  # 0.3 s before the first firing, 0.5 s after the last
    assert sum(bool(f.firings) for f in jobs[0].frames) == 2


def test_recorder_caps_clip_length_and_flushes() -> None:
    r = Recorder(pre_roll_s=0.0, post_roll_s=0.5, max_clip_s=1.0)
    jobs = [j for i in range(30) if (j := r.push(rec(i, fire=True), "m", "v")) is not None]
    assert jobs and all(len(j.frames) == 11 for j in jobs)
    r2 = Recorder(pre_roll_s=0.1, post_roll_s=5.0)
    for i in range(3):
        assert r2.push(rec(i, fire=i == 1), "m", "v") is None
    tail = r2.flush("m", "v")
    assert tail is not None and len(tail.frames) == 3 and r2.flush("m", "v") is None


def test_probe_falls_back_to_libx264_and_encodes_decodable_h264(tmp_path: Path) -> None:
    import av

    assert probe_encoder(("h264_nvenc", "h264_v4l2m2m", "h264_qsv", "h264_vaapi")) in (
        "h264_nvenc", "h264_v4l2m2m", "h264_qsv", "h264_vaapi", "libx264")
    assert probe_encoder(()) == "libx264"
    images = [scene(i, moving=True) for i in range(12)]
    times = [i / 10 for i in range(12)]
    info = encode_clip(images, times, tmp_path / "c.mp4")
    assert (info.frame_count, info.width, info.height, info.fps) == (12, 320, 240, 10.0)
    with av.open(str(tmp_path / "c.mp4")) as c:
        s = c.streams.video[0]
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
        assert s.codec_context.name == "h264"
    assert len(decoded) == 12
    assert np.abs(decoded[5].astype(int) - images[5].astype(int)).mean() < 12  # lossy but close


def make_job(n: int = 8, priority: int = 5, seed: int = 0) -> CaptureJob:
    frames = [rec(i + seed * 100, fire=(i == 2), priority=priority) for i in range(n)]
    return CaptureJob(frames, "m1", "v1", 1)


def spool_one(spool: Spool, job: CaptureJob, tmp_path: Path, created_ns: int) -> None:
    tmp = spool.tmp_path(f"{created_ns}.part")
    clip = encode_clip([f.image for f in job.frames], [f.t for f in job.frames], tmp)
    data = tmp.read_bytes()
    sc = build_sidecar(job, sha256=hashlib.sha256(data).hexdigest(), size=len(data), clip=clip,
                       device_id="cart-1", store_id="A", agent_version="t")
    spool.commit(tmp, dump_document(sc), created_ns)


def test_sidecar_matches_contract_and_clip(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", cap_bytes=10**8)
    worker = CaptureWorker(spool, Telemetry(), device_id="cart-1", store_id="A", agent_version="t",
                           encoders=())
    worker.process(make_job(priority=2))
    (entry,) = spool.entries()
    sc = parse_sidecar(entry.sidecar_path.read_bytes())
    data = entry.clip_path.read_bytes()
    assert sc.clip_id == clip_id_for_bytes(data) == entry.clip_id
    assert sc.clip.size_bytes == len(data) and sc.clip.frame_count == 8
    assert sc.priority == 2 and sc.model_version == "m1" and sc.rule_set_version == "v1"
    assert [t.frame for t in sc.triggers] == [2] and sc.triggers[0].rule == "r: motion"
    assert sc.triggers[0].signals == {"motion": 9.0}
    assert len(sc.weight_series) == 8 and sc.location_series[0].aisle == "A01"
    assert sc.capture_date == "2026-11-25" and sc.started_at == T0
    assert entry.clip_key.endswith(f"device=cart-1/date={sc.capture_date}/store=A/{sc.clip_id}.mp4")
    assert list(spool.tmp.iterdir()) == []


def test_scan_discards_partials_and_corrupt_entries(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", cap_bytes=10**8)
    for k in range(3):
        spool_one(spool, make_job(seed=k), tmp_path, 1000 + k)
    good, torn, flipped = spool.entries()
    (spool.tmp / "123.mp4.part").write_bytes(b"half an encode")
    torn.sidecar_path.unlink()  # crashed between clip and sidecar
    raw = bytearray(flipped.clip_path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    flipped.clip_path.write_bytes(bytes(raw))  # bit rot
    (spool.ready / ".x.json.1.2.tmp").write_bytes(b"{")  # torn sidecar temp file

    fresh = Spool(tmp_path / "spool", cap_bytes=10**8)
    assert fresh.scan() == 1
    assert [e.name for e in fresh.entries()] == [good.name]
    assert fresh.discarded == {"partial_tmp": 2, "clip_without_sidecar": 1, "corrupt": 2}
    assert sorted(p.name for p in fresh.ready.iterdir()) == sorted(
        [good.clip_path.name, good.sidecar_path.name])
    assert list(fresh.tmp.iterdir()) == []


def test_cap_policies_and_priority_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s1", cap_bytes=10**8)
    for k, prio in enumerate((5, 1, 5, 0)):
        spool_one(spool, make_job(seed=k, priority=prio), tmp_path, 1000 + k)
    assert [e.priority for e in spool.entries()] == [0, 1, 5, 5]
    first = spool.checkout()
    assert first is not None and first.priority == 0 and first.in_flight
    size = max(e.size for e in spool.entries())
    total = spool.used_bytes

    oldest = Spool(tmp_path / "s1", cap_bytes=total, policy="oldest_first")
    oldest.scan()
    ok, evicted = oldest.make_room(size)
    order = [e.created_ns for e in evicted]
    assert ok and order[0] == 1000 and order == sorted(order)  # the oldest go first
    assert oldest.used_bytes + size <= total
    assert not evicted[0].clip_path.exists()

    paused = Spool(tmp_path / "s1", cap_bytes=oldest.used_bytes, policy="pause")
    paused.scan()
    assert paused.make_room(size) == (False, [])
    assert paused.make_room(10**9)[0] is False  # bigger than the whole cap
    with pytest.raises(ValueError, match="cap must be positive"):
        Spool(tmp_path / "s2", cap_bytes=-1)


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "status.json"
    atomic_write(target, json.dumps({"a": 1}).encode())
    atomic_write(target, json.dumps({"a": 2}).encode())
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_process_isolated_encoder_matches_and_recovers(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", cap_bytes=10**8)
    tel = Telemetry()
    worker = CaptureWorker(spool, tel, device_id="cart-1", store_id="A", agent_version="t",
                           encoders=(), isolation="process")
    try:
        worker.process(make_job(priority=2))
        (entry,) = spool.entries()
        sc = parse_sidecar(entry.sidecar_path.read_bytes())
        assert sc.clip_id == clip_id_for_bytes(entry.clip_path.read_bytes()) and sc.priority == 2
        child = worker._encoder._proc
        assert child is not None and child.pid != os.getpid()
        assert Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[16] != \
            Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[16]  # niced child
        child.kill()  # the encoder dies between captures: restarted on the next one
        child.join(5)
        worker.process(make_job(seed=1))
        assert worker._encoder.restarts == 1 and len(spool) == 2
        switch = make_job(seed=2)
        switch.frames[3].image = switch.frames[3].image[:100]  # the camera changed resolution
        worker._q.put(switch)
        worker.start()
        assert worker.wait_idle(30)
        # scaled into the clip's size, as the in-thread encoder does: the capture is kept
        assert tel.totals.drops == {} and len(spool) == 3
    finally:
        worker.stop()
    assert worker._encoder._proc is None
