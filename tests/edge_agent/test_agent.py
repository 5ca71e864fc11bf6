"""The agent end to end on a local lake: frames in, the right moments captured, verified clips out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from edge_agent.contract import parse_sidecar, parse_status_report
from edge_agent.triggers import build_rule_set
from tests.edge_agent.conftest import EAN_A, capture_config, lake_clips, scene, scripted_frames


def test_captures_what_the_rules_ask_for_and_records_why(local_lake, make_agent) -> None:
    rules = build_rule_set("r2", [
        {"name": "scan", "when": "all(motion, barcode)", "priority": 3},
        {"name": "insert", "when": "weight_change(200)", "priority": 4},
        {"name": "promo", "when": f'campaign("sku:{EAN_A}")', "priority": 0},
    ])
    agent = make_agent(local_lake, rules=rules)
    events = {
        range(10, 16): {"moving": True, "barcode": EAN_A},  # scan with a barcode in view
        range(40, 45): {"weight": 450},  # an item lands (the weight stays up afterwards)
        range(45, 200): {"weight": 450},
    }
    for f in scripted_frames(120, events):
        agent.process(f)
    totals = agent.close(drain_timeout=30)
    assert totals["captures"] == 2 and totals["uploaded_clips"] == 2 and totals["drops"] == {}
    assert totals["fires"]["scan"] >= 4 and totals["fires"]["insert"] >= 5
    clips, sidecars = lake_clips(local_lake)
    assert len(clips) == 2 and len(sidecars) == 2
    docs = sorted((parse_sidecar(local_lake.get(k)) for k in sidecars), key=lambda d: d.started_at)
    scan, insert = docs
    scan_rules = {t.rule.split(":")[0] for t in scan.triggers}
    assert scan_rules == {"scan", "promo"}
    assert scan.priority == 0  # the campaign's priority wins
    first = next(t for t in scan.triggers if t.rule.startswith("scan"))
    assert first.signals["barcode"] == EAN_A and first.signals["motion"] > 8
    assert [b.text for b in scan.barcode_reads][:1] == [EAN_A]
    assert {t.rule.split(":")[0] for t in insert.triggers} == {"insert"}
    assert insert.triggers[0].value >= 200
    assert insert.model_version == "test-model-1" and insert.rule_set_version == "r2"
    # pre-roll: the scan clip starts ~0.3 s before the first firing frame (15 fps)
    assert scan.triggers[0].frame in (4, 5)
    assert all(f.prediction in (None, "4006381333931", "5012345678900") for f in scan.frames)
    status = [o.key for o in local_lake.list("landing/status/device=cart-test-01")]
    report = parse_status_report(local_lake.get(status[-1]))
    assert report.device_id == "cart-test-01" and report.model_version == "test-model-1"
    # one report covers the whole run here (the interval is an hour): it carries the run's numbers
    assert report.frames_processed == 120 and report.captures == 2 and report.uploaded_clips == 2
    assert report.fire_counts == dict(totals["fires"]) and report.drops == {}
    assert report.rule_set_version == "r2" and report.spool_clips == 0 and report.spool_bytes == 0
    assert report.uploaded_bytes == totals["uploaded_bytes"] > 0 and report.upload_bytes_per_s > 0
    assert 0 < report.inference_latency_ms.p50 <= report.inference_latency_ms.p99


def test_hot_rule_swap_between_frames(local_lake, make_agent) -> None:
    agent = make_agent(local_lake, rules=build_rule_set("a", {"never": "low_confidence(0.0001)"}))
    for f in scripted_frames(20, {range(0, 20): {"moving": True}}):
        agent.process(f)
    assert agent.telemetry.totals.captures == 0
    agent.set_rules(build_rule_set("b", {"move": "motion"}))
    for f in scripted_frames(30, {range(5, 10): {"moving": True}}):
        agent.process(f)
    totals = agent.close(drain_timeout=30)
    assert totals["captures"] == 1 and totals["rule_reloads"] == 1
    (side,) = lake_clips(local_lake)[1]
    assert parse_sidecar(local_lake.get(side)).rule_set_version == "b"


def test_corrupt_frames_are_counted_and_skipped(local_lake, make_agent) -> None:
    from edge_agent.sources import Frame

    agent = make_agent(local_lake)
    bad = [Frame(np.zeros((240, 320), np.uint8), 0.0), Frame(np.zeros((241, 320, 3), np.uint8), 0.1),
           Frame(np.zeros((240, 320, 3), np.float32), 0.2), Frame(scene(0), float("nan")), "junk"]
    for f in bad:
        assert agent.process(f) == []
    for f in scripted_frames(10):
        agent.process(f)
    totals = agent.close()
    assert totals["corrupt_frames"] == 5 and totals["frames"] == 10


def write_video(path: Path, n: int = 60, fps: int = 15) -> Path:
    from edge_agent.capture.encoder import encode_clip

    imgs = [scene(i, moving=20 <= i < 30) for i in range(n)]
    encode_clip(imgs, [i / fps for i in range(n)], path)
    return path


def write_config(tmp_path: Path, model_dir: Path, lake_dir: Path, **over) -> Path:
    video = write_video(tmp_path / "aisle.mp4")
    cfg = f"""
device_id = "cart-cli-01"
store_id = "A"
[source]
url = "{video}"
max_reconnects = 0
[model]
dir = "{model_dir}"
[triggers]
version = "cli-1"
[[triggers.rules]]
name = "move"
when = "motion(8)"
priority = 2
[capture]
pre_roll_s = 0.2
post_roll_s = 0.2
[spool]
dir = "spool"
cap_bytes = {over.get("cap_bytes", 50_000_000)}
[upload]
lake = "{over.get("lake_uri") or lake_dir.as_uri()}"
endpoint = "{over.get("endpoint", "")}"
bandwidth_bytes_per_s = 5000000
[telemetry]
status_interval_s = 1
"""
    path = tmp_path / "agent.toml"
    path.write_text(cfg)
    return path


def test_cli_run_and_status_on_a_video_file(tmp_path: Path, model_dir: Path) -> None:
    lake_dir = tmp_path / "lake"
    cfg = write_config(tmp_path, model_dir, lake_dir)
    run = subprocess.run([sys.executable, "-m", "edge_agent.cli", "run", "--config", str(cfg),
                          "--drain-s", "30"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    totals = json.loads(run.stdout[run.stdout.index("{"):])
    assert totals["frames"] == 60 and totals["captures"] == 1 and totals["uploaded_clips"] == 1
    mp4s = list(lake_dir.rglob("*.mp4"))
    assert len(mp4s) == 1 and mp4s[0].with_suffix(".json").exists()
    st = subprocess.run([sys.executable, "-m", "edge_agent.cli", "status", "--config", str(cfg)],
                        capture_output=True, text=True, timeout=60)
    assert st.returncode == 0, st.stderr
    assert "device cart-cli-01" in st.stdout and "captures 1" in st.stdout
    assert "uploaded 1" in st.stdout


def test_rule_file_hot_reload_through_the_agent(tmp_path: Path, local_lake, make_agent) -> None:
    from edge_agent.triggers import RuleSetWatcher, load_rule_set

    path = tmp_path / "rules.toml"
    path.write_text('version = "1"\n[[rules]]\nname = "never"\nwhen = "low_confidence(0.00001)"\n')
    agent = make_agent(local_lake, rules=load_rule_set(path), rules_watcher=RuleSetWatcher(path))
    for f in scripted_frames(20, {range(5, 10): {"moving": True}}):
        agent.process(f)
    assert agent.telemetry.totals.captures == 0

    def push(text: str, bump: int) -> None:  # what the cloud's rule push does: replace the file
        path.write_text(text)
        os.utime(path, ns=(time.time_ns(), time.time_ns() + bump * 10**9))

    push('version = "2"\n[[rules]]\nname = "move"\nwhen = "motion(8)"\n', 1)
    assert agent.reload_rules() and agent.rules.version == "2"
    push('version = "3"\n[[rules]]\nname = "bad"\nwhen = "all(motion, "\n', 2)
    assert not agent.reload_rules() and agent.rules.version == "2"  # a broken push keeps the old set
    for f in scripted_frames(30, {range(5, 10): {"moving": True}}):
        agent.process(f)
    totals = agent.close(drain_timeout=30)
    assert totals["captures"] == 1 and totals["rule_reloads"] == 1 and totals["rule_errors"] == 1


def test_http_stream_source(tmp_path: Path) -> None:
    import functools
    import http.server
    import threading

    from edge_agent.sources import AvSource

    write_video(tmp_path / "cam.mp4", n=30)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        src = AvSource(f"http://127.0.0.1:{server.server_address[1]}/cam.mp4")
        frames = list(src)
        src.close()
    finally:
        server.shutdown()
    assert len(frames) == 30 and frames[0].image.shape == (240, 320, 3)
    assert [round(f.t * 15) for f in frames] == list(range(30))


def test_worker_threads_run_at_lower_os_priority(local_lake, make_agent) -> None:
    agent = make_agent(local_lake)
    time.sleep(0.2)

    def nice_of(thread) -> int:
        stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[16])

    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert nice_of(agent.worker._thread) == min(19, base + 10)
    assert nice_of(agent.uploader._thread) == min(19, base + 10)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # the loop keeps its own
    agent.close()


def test_model_fault_costs_the_frame_not_the_loop(local_lake, make_agent) -> None:
    agent = make_agent(local_lake)
    real = agent.model

    class Flaky:
        version = real.version

        def __init__(self) -> None:
            self.n = 0

        def predict(self, image):
            self.n += 1
            if self.n % 3 == 0:
                raise RuntimeError("ORT: invalid input")
            return real.predict(image)

    agent.model = Flaky()
    for f in scripted_frames(30):
        agent.process(f)
    totals = agent.close()
    assert totals["model_errors"] == 10 and totals["frames"] == 20


def test_encoder_behind_drops_captures_never_frames(local_lake, make_agent) -> None:

    bursts = {range(k * 20 + 5, k * 20 + 10): {"moving": True} for k in range(5)}
    agent = make_agent(local_lake, start=False,  # the encoder is not consuming: it is "behind"
                       capture=capture_config(pre_roll_s=0.2, post_roll_s=0.2, queue_size=2))
    for f in scripted_frames(100, bursts):
        agent.process(f)
    assert agent.telemetry.totals.frames == 100  # every frame went through the model and rules
    assert agent.telemetry.totals.captures == 5
    assert dict(agent.telemetry.totals.drops) == {"queue_full": 3}
    agent.start()
    totals = agent.close(drain_timeout=30)
    assert totals["uploaded_clips"] == 2
    assert totals["captures"] == totals["uploaded_clips"] + sum(totals["drops"].values())


def test_model_hot_swap_through_the_agent(local_lake, make_agent, model_dir: Path) -> None:
    from edge_agent.runtime import model_loader
    from flywheel.fleet.bootstrap import install_model_slot

    agent = make_agent(local_lake, model_loader=model_loader(model_dir, threads=1))
    for f in scripted_frames(30, {range(5, 10): {"moving": True}}):
        agent.process(f)
    assert not agent.reload_model()  # nothing changed
    # OTA installs slot b and flips the pointer: the next frames run the new model
    install_model_slot(model_dir, ["none", EAN_A], version="test-model-2", slot="b", seed=5)
    assert agent.reload_model() and agent.model.version == "test-model-2"
    # a broken slot c is refused; the running model stays
    (model_dir / "slots" / "c").mkdir()
    (model_dir / "active").write_text("c")
    assert not agent.reload_model() and agent.model.version == "test-model-2"
    for f in scripted_frames(30, {range(12, 17): {"moving": True}}):  # other frames: another clip id
        agent.process(f)
    totals = agent.close(drain_timeout=30)
    assert totals["model_reload_errors"] == 1 and totals["uploaded_clips"] == 2
    assert totals["already_uploaded"] == 0
    versions = sorted(parse_sidecar(local_lake.get(k)).model_version for k in lake_clips(local_lake)[1])
    assert versions == ["test-model-1", "test-model-2"]
