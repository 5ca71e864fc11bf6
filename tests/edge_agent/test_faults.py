"""Faults and bad input, against a real SeaweedFS where a store is involved.

Store down for a whole run, a flapping store, SIGKILL mid-encode and mid-upload, a tiny disk,
corrupt frames and a dying source, hostile configs.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge_agent.config import ConfigError, load_config
from edge_agent.contract import parse_sidecar, parse_status_report
from edge_agent.lake import Lake, S3Options
from edge_agent.sources import AvSource, Frame, IterSource, ReconnectingSource
from tests.edge_agent.conftest import capture_config, lake_clips, scene, scripted_frames
from tests.edge_agent.test_agent import write_config
from tests.support.faulty_lake import FaultyLake

BURSTS = {range(k * 20 + 5, k * 20 + 10): {"moving": True} for k in range(10)}  # 10 captures


def assert_lake_complete(lake) -> int:
    """Every sidecar has its clip, complete and matching; returns the number of clips."""
    clips, sidecars = lake_clips(lake)
    assert {k[:-4] for k in clips} >= {k[:-5] for k in sidecars}
    for key in sidecars:
        sc = parse_sidecar(lake.get(key))
        data = lake.get(key[:-5] + ".mp4")
        assert len(data) == sc.clip.size_bytes
        assert hashlib.sha256(data).hexdigest() == sc.clip.sha256
    return len(sidecars)


def reconcile(t: dict, still_spooled: int = 0) -> None:
    assert t["captures"] == t["uploaded_clips"] + sum(t["drops"].values()) + still_spooled, t


class SwitchableLake:
    """The device's view of 'the store': whichever server currently answers at its address."""

    def __init__(self, lake: Lake) -> None:
        self.current = lake

    def __getattr__(self, name: str):
        return getattr(self.current, name)


def s3_lake_for(server, prefix: str) -> Lake:
    return Lake(f"s3://{server.bucket}/{prefix}", s3=S3Options(
        endpoint=server.endpoint, access_key_id=server.access_key, secret_access_key=server.secret_key))


def unreachable_lake() -> Lake:
    """An S3 lake at a loopback port nobody listens on: every call is refused by the OS."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return Lake(f"s3://down/{port}", s3=S3Options(endpoint=f"http://127.0.0.1:{port}",
                                                    access_key_id="k", secret_access_key="s"))


@pytest.mark.integration
@pytest.mark.parametrize("policy, cause", [("oldest_first", "evicted"), ("pause", "spool_full")])
def test_store_down_for_the_whole_run(s3_lake, make_agent, policy: str, cause: str) -> None:
    s3_lake.put("marker", b"the bucket exists")  # weed mini creates its bucket on first write
    switch = SwitchableLake(unreachable_lake())  # the store is down: real refused connections
    counted = FaultyLake(switch)  # no faults injected: counts the puts that reach a store
    agent = make_agent(counted, cap_bytes=25_000, policy=policy,
                       capture=capture_config(pre_roll_s=0.2, post_roll_s=0.2, queue_size=16))
    for f in scripted_frames(200, BURSTS):
        agent.process(f)
    agent.worker.stop(drain=True)  # all captures encoded and spooled (or dropped)
    deadline = time.monotonic() + 30  # each refused attempt takes the client's own retries
    while agent.telemetry.totals.upload_failures < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    t = agent.telemetry.snapshot()
    assert t["captures"] == 10
    assert t["drops"].get(cause, 0) > 0, t  # the cap was hit and the policy applied, counted
    assert agent.spool.used_bytes <= 25_000
    assert t["upload_failures"] > 0 and t["uploaded_clips"] == 0
    assert lake_clips(s3_lake) == ([], [])
    spooled = len(agent.spool)
    if policy == "oldest_first":
        assert t["cleanups"] == t["drops"]["evicted"]

    switch.current = s3_lake  # the store comes back: everything still spooled goes up exactly once
    assert agent.uploader.wait_drained(60)
    t = agent.close()
    assert t["uploaded_clips"] == spooled
    reconcile(t)
    assert assert_lake_complete(s3_lake) == spooled
    assert all(n == 1 for k, n in counted.puts.items() if "landing/clips/" in k)
    # the final status report went up once the store was back, carrying the run's drops
    (status,) = [o.key for o in s3_lake.list("landing/status/device=cart-test-01")]
    assert parse_status_report(s3_lake.get(status)).drops == t["drops"]


@pytest.mark.slow
@pytest.mark.integration
def test_flapping_store_and_garbling_transport(tmp_path: Path, make_agent) -> None:
    from flywheel.devstack.seaweedfs import start_seaweedfs

    data_dir = tmp_path / "weed"
    server = start_seaweedfs(data_dir)
    switch = SwitchableLake(s3_lake_for(server, "flap"))
    faulty = FaultyLake(switch, rate=0.15, faults=("cut", "garble", "lost_ack"), seed=7)
    agent = make_agent(faulty, capture=capture_config(pre_roll_s=0.2, post_roll_s=0.2, queue_size=16))
    servers = [server]
    try:
        frames = list(scripted_frames(200, BURSTS))
        for f in frames[:100]:
            agent.process(f)
        server.stop()  # the store goes away mid-run ...
        for f in frames[100:150]:
            agent.process(f)
        time.sleep(1.0)
        server = start_seaweedfs(data_dir)  # ... and comes back (same data, new address)
        servers.append(server)
        switch.current = s3_lake_for(server, "flap")
        for f in frames[150:]:
            agent.process(f)
        agent.worker.stop(drain=True)
        assert agent.uploader.wait_drained(120)
        t = agent.close()
        assert t["captures"] == 10 and t["uploaded_clips"] == 10 and t["drops"] == {}
        assert t["upload_failures"] > 0 and sum(faulty.injected.values()) > 0
        assert assert_lake_complete(switch.current) == 10
        clips, sidecars = lake_clips(switch.current)
        assert len(clips) == len(sidecars) == 10  # no duplicates, no orphans
    finally:
        for s in servers:
            s.stop()


def agent_cmd(cfg: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(cfg), *extra]


def wait_for_line(proc: subprocess.Popen, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if text in line:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"agent exited before {text!r}: {proc.stderr.read()[-2000:]}")
    raise AssertionError(f"no {text!r} within {timeout}s")


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("point", ["encode", "upload"])
def test_sigkill_mid_encode_and_mid_upload(tmp_path: Path, model_dir: Path, seaweed, point: str
                                           ) -> None:
    prefix = f"sigkill-{point}-{os.getpid()}"
    lake = s3_lake_for(seaweed, prefix)
    lake.put("marker", b"the bucket exists")
    cfg = write_config(tmp_path, model_dir, tmp_path / "unused",
                       lake_uri=f"s3://{seaweed.bucket}/{prefix}", endpoint=seaweed.endpoint)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": seaweed.access_key,
           "AWS_SECRET_ACCESS_KEY": seaweed.secret_key}
    # the real agent CLI, driven through a stalling FaultHooks (tests/support/faults.py)
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.faults", point, "run", "--config",
                             str(cfg), "--drain-s", "30"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            cwd=Path(__file__).resolve().parents[2])
    try:
        wait_for_line(proc, f"STALL {point}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    clips, sidecars = lake_clips(lake)
    spool = tmp_path / "spool"
    if point == "encode":
        assert clips == [] and sidecars == []
        assert any(p.name.endswith(".part") for p in (spool / "tmp").iterdir())
    else:
        assert len(clips) == 1 and sidecars == []  # the sidecar never lands before its clip
        assert len(list((spool / "ready").glob("*.json"))) == 1

    # restart (one frame: nothing new to capture): recovery discards partials, resumes uploads
    rerun = subprocess.run(agent_cmd(cfg, "--max-frames", "1", "--drain-s", "30"),
                           capture_output=True, text=True, timeout=120, env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert list((spool / "tmp").iterdir()) == []
    clips, sidecars = lake_clips(lake)
    if point == "encode":
        assert clips == [] and sidecars == []  # the half-encoded clip was discarded, not uploaded
        assert "partial_tmp" in (spool / "status.json").read_text()
    else:
        assert len(clips) == len(sidecars) == 1
        assert assert_lake_complete(lake) == 1
    assert list((spool / "ready").iterdir()) == []


def test_tiny_disk_keeps_the_primary_loop_running(tmp_path: Path, make_agent, local_lake) -> None:
    agent = make_agent(None, cap_bytes=1000,  # smaller than any clip
                       capture=capture_config(pre_roll_s=0.2, post_roll_s=0.2, queue_size=16))
    for f in scripted_frames(200, BURSTS):
        agent.process(f)
    t = agent.close()
    assert t["frames"] == 200 and t["captures"] == 10
    assert t["drops"] == {"spool_full": 10}
    reconcile(t)

    free = [10**9]
    low = make_agent(local_lake, min_free_bytes=50 * 1024**2, disk_free=lambda p: free[0],
                     device_id="cart-low",
                     capture=capture_config(pre_roll_s=0.2, post_roll_s=0.2, queue_size=16))
    frames = list(scripted_frames(200, BURSTS))
    for f in frames[:100]:
        low.process(f)
    assert low.worker.wait_idle(60)  # the first five captures are encoded and spooled
    free[0] = 10 * 1024**2  # the disk fills up: capture pauses, counted
    for f in frames[100:]:
        low.process(f)
    t = low.close(drain_timeout=30)
    assert t["frames"] == 200 and t["captures"] == 10
    assert t["drops"] == {"disk_low": 5} and t["capture_pauses"] == 5
    assert t["uploaded_clips"] == 5
    reconcile(t)


def test_dying_source_is_reported_and_reconnected(make_agent, local_lake) -> None:
    opened = [0]

    def flaky():
        opened[0] += 1
        n = opened[0]

        def gen():
            for i in range(15):
                if n < 4 and i == 10:
                    raise OSError(f"camera unplugged (#{n})")
                yield Frame(scene(i, moving=5 <= i < 8), i / 15)
        return IterSource(gen())

    agent = make_agent(local_lake)
    errors: list[str] = []
    src = ReconnectingSource(flaky, backoff_s=0.01, max_reconnects=10,
                             on_error=lambda c, e: (errors.append(c), agent.telemetry.add("source_errors")))
    n = agent.run(src)
    t = agent.close(drain_timeout=30)
    assert opened[0] == 4 and src.reconnects == 3 and errors == ["OSError"] * 3
    assert n == 3 * 10 + 15 and t["frames"] == n and t["source_errors"] == 3
    assert t["captures"] == 4 and t["uploaded_clips"] == 4  # timestamps stay monotonic across reconnects


def test_corrupt_video_file_reports_and_gives_up_cleanly(tmp_path: Path) -> None:
    from tests.edge_agent.test_agent import write_video

    good = write_video(tmp_path / "good.mp4", n=40)
    torn = tmp_path / "torn.mp4"
    raw = bytearray(good.read_bytes())
    torn.write_bytes(bytes(raw[: len(raw) // 2]))  # file cut mid-stream
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())

    torn_src = ReconnectingSource(lambda: AvSource(str(torn)), max_reconnects=1, backoff_s=0.01)
    assert list(torn_src) == []  # MP4 index (moov) lost with the tail: reported, not a crash
    assert torn_src.errors == {"InvalidDataError": 2}
    assert len(list(ReconnectingSource(lambda: AvSource(str(good)), max_reconnects=0))) == 40
    src = ReconnectingSource(lambda: AvSource(str(garbage)), max_reconnects=2, backoff_s=0.01)
    assert list(src) == []
    assert sum(src.errors.values()) == 3 and src.reconnects == 2


HOSTILE = [
    ("spool_cap", {"spool": "[spool]\ncap_bytes = -5\n"}, "spool.cap_bytes: must be positive"),
    ("bandwidth", {"upload_extra": "bandwidth_bytes_per_s = -1\n"}, "bandwidth_bytes_per_s"),
    ("unknown_trigger", {"when": "all(motion, teleport)"}, "unknown trigger 'teleport'"),
    ("unparsable", {"when": "all(motion,, barcode"}, "position 11"),
    ("unknown_key", {"extra": "[capture]\nprerol_s = 1\n"}, "unknown key(s) ['prerol_s']"),
    ("bad_device", {"device": "../../etc"}, "device_id"),
    ("bad_policy", {"spool": '[spool]\npolicy = "yolo"\n'}, "spool.policy"),
    ("bad_window", {"upload_extra": 'windows = ["25:00-26:00"]\n'}, "upload.windows"),
    ("wrong_type", {"spool": '[spool]\ncap_bytes = "lots"\n'}, "spool.cap_bytes: expected int"),
    ("not_toml", {"raw": "device_id = \n"}, "not valid TOML"),
    ("isolation", {"extra": '[capture]\nisolation = "fiber"\n'}, "capture.isolation"),
    ("queue", {"extra": "[capture]\nqueue_size = 0\n"}, "capture.queue_size"),
    ("encoder", {"extra": '[capture]\nencoders = ["h264_magic"]\n'}, "unknown encoder(s)"),
]


@pytest.mark.parametrize("name, edit, message", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_config_fails_at_start_with_a_clear_error(tmp_path: Path, name, edit, message) -> None:
    when = edit.get("when", "motion").replace('"', '\\"')
    text = f"""device_id = "{edit.get('device', 'cart-1')}"
store_id = "A"
[source]
url = "x.mp4"
[model]
dir = "m"
[triggers]
version = "1"
[[triggers.rules]]
name = "r"
when = "{when}"
[upload]
lake = "lake"
{edit.get('upload_extra', '')}
{edit.get('spool', '')}
{edit.get('extra', '')}
"""
    path = tmp_path / "agent.toml"
    path.write_text(edit.get("raw", text))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert message in str(e.value)
    out = subprocess.run(agent_cmd(path), capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "invalid config" in out.stderr and message in out.stderr


def test_status_reports_are_published_periodically(local_lake, make_agent) -> None:
    agent = make_agent(local_lake, status_interval_s=0.3)
    for f in scripted_frames(60, {range(10, 15): {"moving": True}}):
        agent.process(f)
    prefix = "landing/status/device=cart-test-01"
    deadline = time.monotonic() + 30  # generous: this only waits for the housekeeping thread
    while len(list(local_lake.list(prefix))) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    agent.close(drain_timeout=10)
    keys = [o.key for o in local_lake.list(prefix)]
    assert len(keys) >= 3  # two periodic reports, then the final one at close
    reports = [parse_status_report(local_lake.get(k)) for k in keys]
    assert sum(r.frames_processed for r in reports) == 60  # windows are deltas: they add up
    assert sum(r.captures for r in reports) == 1


def test_live_source_that_ends_is_reconnected() -> None:
    opened = [0]

    def stream():
        opened[0] += 1
        return IterSource(Frame(scene(i), i / 15) for i in range(5))

    src = ReconnectingSource(stream, reconnect_on_eof=True, max_reconnects=2, backoff_s=0.001)
    frames = list(src)
    assert opened[0] == 3 and len(frames) == 15 and src.errors == {"EOFError": 3}
    ts = [f.t for f in frames]
    assert ts == sorted(ts) and len(set(ts)) == 15
