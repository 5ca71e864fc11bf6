"""Collector benchmarks: isolation, capture throughput vs the ffmpeg CLI, bandwidth-cap accuracy.

1. Isolation: p99 latency of the primary loop (`Agent.process`: ONNX model, motion, barcode, rules,
   ring buffer) paced at a camera rate, with the collector capturing at its maximum rate (a rule that
   fires on every frame, back-to-back half-second clips encoded in the niced child process and
   uploaded to a local lake by the niced uploader thread) vs the same loop
   with a rule that never fires. Short blocks alternate off/on (this machine is shared: noise
   bursts hit both sides alike); reported: the pooled p99 ratio and the median-over-blocks p99 ratio.
   The encoder runs in its own niced process (capture.isolation = "process"). Target: <= 1.05.
2. Capture throughput: frames/s through the ring buffer, the encoder, hashing, sidecar and spool
   commit (CaptureWorker.process) vs `ffmpeg` encoding the same raw RGB frames with the same
   settings (libx264, ultrafast, zerolatency, 1 thread, yuv420p, mp4). Target: ratio >= 0.9.
3. Bandwidth cap: the uploader's measured rate over a window vs the configured token-bucket cap.
   Window: 30 s as the issue asks (BENCH_COLLECTOR_BW_WINDOW_S shortens it; the bucket's
   accuracy does not depend on the window beyond the one-clip granularity). Target: within 10%.

Run: `python -m benchmarks.bench_collector [out_dir]` (writes out_dir/collector.json).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

CAMERA_FPS = 60.0
ISOLATION_BLOCK = 120  # frames per block (2 s at 60 fps)
ISOLATION_BLOCKS = 20  # blocks per side, alternating off/on
THROUGHPUT_FRAMES = 300
THROUGHPUT_SIZE = (480, 640)
BW_CAP = 400_000.0  # bytes/s
BW_CLIP_BYTES = 150_000


def _frames(n: int, hw: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """A moving object over a textured, noisy background (compresses like camera video)."""
    rng = np.random.default_rng(seed)
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w]
    base = (np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) % 64) * 4], -1)).astype(np.uint8)
    out = []
    for i in range(n):
        img = base.copy()
        x = (i * 9) % (w - w // 5)
        img[h // 4: h // 4 + h // 3, x: x + w // 5] = (240, 200, 40)
        img = np.clip(img.astype(np.int16) + rng.integers(-6, 7, img.shape, dtype=np.int16), 0, 255)
        out.append(img.astype(np.uint8))
    return out


def _model_dir(root: Path) -> Path:
    from flywheel.fleet.bootstrap import install_model_slot

    labels = ["none", "4006381333931", "5012345678900", "8712345678906"]
    return install_model_slot(root / "model", labels, version="bench-1")


def _agent(root: Path, rules, lake):
    from edge_agent.agent import Agent
    from edge_agent.capture.spool import Spool
    from edge_agent.config import CaptureConfig
    from edge_agent.model import DeviceModel

    return Agent(device_id="bench-cart", store_id="A", model=DeviceModel(_model_dir(root)),
                 rules=rules, spool=Spool(root / "spool", cap_bytes=10**10), lake=lake,
                 # Short clips: an "on" block closes one every half second, so the encoder and
                 # the uploader work through the whole block (the collector's maximum rate).
                 capture=CaptureConfig(pre_roll_s=0.25, post_roll_s=0.25, max_clip_s=0.5,
                                       queue_size=4, encoders=[], isolation="process"),
                 status_interval_s=3600).start()


def bench_isolation(work: Path) -> dict:
    """One agent, alternating short blocks: collector on (a rule firing on every frame) and off
    (a rule that never fires). Both compute the same signals. Before each measured block the
    previous block's encodes and uploads are finished, so "off" is clean; fine-grained alternation
    spreads this shared machine's noise bursts evenly over both sides."""
    from edge_agent.lake import Lake
    from edge_agent.sources import Frame
    from edge_agent.triggers import build_rule_set

    frames = _frames(60, (240, 320), seed=1)
    root = work / "isolation"
    root.mkdir(parents=True)
    shared = {"name": "s", "when": "all(barcode, not(motion(0)))"}  # barcode decode on both sides
    on = build_rule_set("on", [{"name": "r", "when": "motion(0)"}, shared])
    off = build_rule_set("off", [{"name": "r", "when": "low_confidence(0.000001)"}, shared])
    agent = _agent(root, off, Lake.at_path(root / "lake"))
    period = 1.0 / CAMERA_FPS
    lat: dict[str, list[float]] = {"on": [], "off": []}
    block_p99: dict[str, list[float]] = {"on": [], "off": []}
    t = 0.0
    n = 0  # frames so far: stamped into each frame so that no clip repeats an earlier one
    for _ in range(ISOLATION_BLOCKS):
        for side, rules in (("off", off), ("on", on)):
            agent.flush_capture()  # an "on" block's open capture must not be encoded during "off"
            agent.worker.wait_idle(60)
            agent.uploader.wait_drained(60)
            agent.rules = rules
            block = []
            start = time.perf_counter()
            for i in range(ISOLATION_BLOCK):
                # Every clip must differ from earlier ones, as a real camera's do: identical
                # bytes share a content-derived clip id, and each repeat would make the uploader
                # rewrite the sidecar (a workload real fleets do not have).
                image = frames[i % len(frames)].copy()
                image[0, 0] = (n % 256, n // 256 % 256, n // 65536 % 256)
                n += 1
                delay = start + i * period - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                t0 = time.perf_counter()
                agent.process(Frame(image, t))
                block.append((time.perf_counter() - t0) * 1000)
                t += period
            lat[side] += block
            block_p99[side].append(float(np.percentile(block, 99)))
    totals = agent.close(drain_timeout=60)
    p99 = {k: float(np.percentile(v, 99)) for k, v in lat.items()}
    p50 = {k: float(np.percentile(v, 50)) for k, v in lat.items()}
    ratio = p99["on"] / p99["off"]
    return {
        "camera_fps": CAMERA_FPS, "blocks_per_side": ISOLATION_BLOCKS,
        "frames_per_block": ISOLATION_BLOCK,
        "p99_ms_without_collector": round(p99["off"], 3), "p99_ms_with_collector": round(p99["on"], 3),
        "p50_ms_without_collector": round(p50["off"], 3), "p50_ms_with_collector": round(p50["on"], 3),
        "median_block_p99_ratio": round(float(np.median(block_p99["on"]) / np.median(block_p99["off"])),
                                        4),
        "median_paired_block_p99_ratio": round(float(np.median(
            np.asarray(block_p99["on"]) / np.asarray(block_p99["off"]))), 4),
        "captures": totals["captures"], "uploaded": totals["uploaded_clips"], "drops": totals["drops"],
        "p99_ratio": round(ratio, 4), "target_ratio_max": 1.05,
        # Pooled p99 on a shared 2-core machine is set by a few neighbour-induced spikes; the
        # median over blocks of per-block p99 is the robust estimate. Both are reported.
        "passes_pooled": ratio <= 1.05,
        "passes_median_block": float(np.median(block_p99["on"]) / np.median(block_p99["off"])) <= 1.05,
    }


def _ours(frames: list[np.ndarray], fps: float, worker) -> float:
    """Frames/s through the ring buffer (Recorder) and CaptureWorker.process: encode, hash,
    sidecar, spool commit."""
    from edge_agent.capture.recorder import Firing, FrameRecord, Recorder

    before = len(worker.spool)
    t0 = datetime(2026, 11, 25, tzinfo=UTC)
    start = time.perf_counter()
    rec = Recorder(pre_roll_s=0.0, post_roll_s=len(frames) / fps, max_clip_s=10**6)
    job = None
    for i, img in enumerate(frames):
        firings = [Firing("r", "motion", 5, 1.0, {})] if i == 0 else []
        job = rec.push(FrameRecord(img, i / fps, t0 + timedelta(seconds=i / fps), None, 0.9,
                                   firings=firings), "m", "v") or job
    job = job or rec.flush("m", "v")
    worker.process(job)
    elapsed = time.perf_counter() - start
    assert len(worker.spool) == before + 1
    return len(frames) / elapsed


def _workers(root: Path) -> dict:
    from edge_agent.capture.spool import Spool
    from edge_agent.capture.worker import CaptureWorker
    from edge_agent.telemetry import Telemetry

    return {iso: CaptureWorker(Spool(root / f"spool-{iso}", cap_bytes=10**11), Telemetry(),
                               device_id="bench", store_id="A", agent_version="b", encoders=(),
                               isolation=iso)
            for iso in ("thread", "process")}


def _ffmpeg(raw: Path, hw: tuple[int, int], fps: float, out: Path) -> float:
    h, w = hw
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{w}x{h}", "-r", str(fps), "-i", str(raw), "-c:v", "libx264", "-preset", "ultrafast",
           "-tune", "zerolatency", "-threads", "1", "-pix_fmt", "yuv420p", str(out)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return (raw.stat().st_size // (h * w * 3)) / (time.perf_counter() - start)


def bench_throughput(work: Path, repeats: int = 3) -> dict:
    fps = 15.0
    frames = _frames(THROUGHPUT_FRAMES, THROUGHPUT_SIZE, seed=2)
    raw = work / "frames.rgb"
    with open(raw, "wb") as f:
        for img in frames:
            f.write(img.tobytes())
    if shutil.which("ffmpeg") is None:
        return {"error": "ffmpeg CLI not found (apt-get install -y ffmpeg)", "passes": False}
    workers = _workers(work / "tp")
    _ours(frames[:30], fps, workers["process"])  # start the encoder process outside the timing
    ours, ours_proc, theirs = [], [], []
    try:
        for k in range(repeats):  # alternate, keep the best of each (least disturbed by neighbours)
            d = work / f"tp-{k}"
            d.mkdir(parents=True, exist_ok=True)
            ours.append(_ours(frames, fps, workers["thread"]))
            ours_proc.append(_ours(frames, fps, workers["process"]))
            theirs.append(_ffmpeg(raw, THROUGHPUT_SIZE, fps, d / "ffmpeg.mp4"))
    finally:
        workers["process"]._encoder.close()
    ratio = max(ours) / max(theirs)
    ratio_proc = max(ours_proc) / max(theirs)
    return {"frames": THROUGHPUT_FRAMES, "size": f"{THROUGHPUT_SIZE[1]}x{THROUGHPUT_SIZE[0]}",
            "codec": "libx264 ultrafast zerolatency threads=1 yuv420p",
            "collector_fps": round(max(ours), 1), "ffmpeg_cli_fps": round(max(theirs), 1),
            "collector_process_isolated_fps": round(max(ours_proc), 1),
            "collector_fps_all": [round(x, 1) for x in ours],
            "collector_process_isolated_fps_all": [round(x, 1) for x in ours_proc],
            "ffmpeg_cli_fps_all": [round(x, 1) for x in theirs],
            "ratio": round(ratio, 4), "ratio_process_isolated": round(ratio_proc, 4),
            "target_ratio_min": 0.9, "passes": ratio >= 0.9 and ratio_proc >= 0.9}


def bench_bandwidth(work: Path, window_s: float) -> dict:
    from edge_agent.capture.encoder import EncodedClip
    from edge_agent.capture.recorder import CaptureJob, Firing, FrameRecord
    from edge_agent.capture.sidecar import build_sidecar
    from edge_agent.capture.spool import Spool
    from edge_agent.contract import dump_document
    from edge_agent.lake import Lake
    from edge_agent.telemetry import Telemetry
    from edge_agent.upload import TokenBucket, Uploader

    n_clips = int(BW_CAP * (window_s + 6) / BW_CLIP_BYTES) + 2
    spool = Spool(work / "bw-spool", cap_bytes=10**10)
    rng = np.random.default_rng(3)
    t0 = datetime(2026, 11, 25, tzinfo=UTC)
    img = np.zeros((16, 16, 3), np.uint8)
    for k in range(n_clips):
        data = rng.integers(0, 256, BW_CLIP_BYTES, dtype=np.uint8).tobytes()
        tmp = spool.tmp_path(f"{k}.part")
        tmp.write_bytes(data)
        job = CaptureJob([FrameRecord(img, 0.0, t0, None, 0.5,
                                      firings=[Firing("r", "motion", 5, 1.0, {})])], "m", "v", k)
        sc = build_sidecar(job, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                           clip=EncodedClip("h264", 16, 16, 15.0, 1, 0.1), device_id="bench",
                           store_id="A", agent_version="b")
        spool.commit(tmp, dump_document(sc), 1000 + k)
    tel = Telemetry()
    up = Uploader(Lake.at_path(work / "bw-lake"), spool, tel,
                  bucket=TokenBucket(BW_CAP, burst_bytes=BW_CAP * 0.25))
    up.start()
    time.sleep(2.0)  # past the initial burst: measure the steady state
    b0, s0 = tel.totals.uploaded_bytes, time.monotonic()
    time.sleep(window_s)
    b1, s1 = tel.totals.uploaded_bytes, time.monotonic()
    up.stop()
    rate = (b1 - b0) / (s1 - s0)
    err = abs(rate - BW_CAP) / BW_CAP
    return {"cap_bytes_per_s": BW_CAP, "window_s": round(s1 - s0, 2),
            "measured_bytes_per_s": round(rate, 1), "relative_error": round(err, 4),
            "clip_bytes": BW_CLIP_BYTES, "target_relative_error_max": 0.10, "passes": err <= 0.10}


def main(out_dir: Path) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    window = float(os.environ.get("BENCH_COLLECTOR_BW_WINDOW_S", "30"))
    with tempfile.TemporaryDirectory(prefix="bench-collector-") as tmp:
        work = Path(tmp)
        from edge_agent.capture.encoder import probe_encoder

        result = {
            "encoder": probe_encoder(),
            "cpu_count": os.cpu_count(),
            "isolation": bench_isolation(work),
            "capture_throughput": bench_throughput(work),
            "bandwidth_cap": bench_bandwidth(work, window),
        }
    (out_dir / "collector.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("var/bench")
    print(json.dumps(main(out), indent=1))
