"""Depot speed: sensor tick vs landed history, ingest pipeline overhead, filtered vector search.

1. sensor: one tick (100 new clips after the cursors) with 100,000 vs 1,000 objects already landed
   (a third are arrival markers, the rest clips and sidecars); ratio of median tick times (target <= 2).
2. ingest: frames/s through decode + metadata + Parquet + embedding + LanceDB indexing, against
   decode alone plus the encoder's forward pass alone on the same frames (624 sampled frames of 48
   clips, 320x240): overhead = median of paired, alternating rounds (target <= 25%), for the
   fallback descriptor and for a production-model encoder (ultralytics classifier); plus what each
   per-frame step costs alone.
3. search: filtered vector search at 100,000 frames (IVF_PQ, prefilter on store + date range +
   confidence): p50/p99 latency, against exact search with the same filter, and recall@10.

Run: `python -m benchmarks.bench_depot [out_dir]` (writes out_dir/depot.json).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from benchmarks.scratch import scratch_dir

DAY = "2026-11-24"


def _touch(root: Path, key: str) -> None:
    p = root / key
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"")


def _landed(root: Path, n_objects: int, start: datetime) -> datetime:
    """`n_objects` landed objects (clip, sidecar, marker per clip), markers one second apart."""
    from edge_agent.contract.layout import arrival_key, clip_key, sidecar_key

    n_clips = n_objects // 3
    at = start
    for i in range(n_clips):
        at = start + timedelta(seconds=i)
        day = at.date().isoformat()
        dev, cid = f"cart-{i % 200:03d}", f"{i:032x}"
        _touch(root, clip_key(day, "store-a", dev, cid))
        _touch(root, sidecar_key(day, "store-a", dev, cid))
        _touch(root, arrival_key(at, day, "store-a", dev, cid))
    return at


def bench_sensor(new: int = 100, repeats: int = 7) -> dict:
    from edge_agent.lake import Lake
    from flywheel.depot.config import DepotConfig
    from flywheel.depot.landing import LandingCursor, scan_landing

    out: dict = {}
    for n in (1_000, 100_000):
        root = scratch_dir(prefix=f"bench-sensor-{n}-")
        lake = Lake.at_path(root)
        t0 = time.perf_counter()
        last = _landed(root, n, datetime(2026, 10, 1, tzinfo=UTC))
        build_s = time.perf_counter() - t0
        # the sensor has consumed the history: the cursor is at its last marker
        history = scan_landing(lake, LandingCursor(), now=last.timestamp() + 10,
                               config=DepotConfig(max_keys_per_tick=10**9))
        cursor = LandingCursor(after=history.cursor.after, clips_after=history.cursor.clips_after)
        _landed_new = [_touch(root, k) for k in _new_keys(last + timedelta(seconds=5), new)]
        now = (last + timedelta(minutes=10)).timestamp()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            scan = scan_landing(lake, cursor, now=now)
            times.append(time.perf_counter() - t0)
            # both streams see the new clips (markers + clip keys); each clip is reported once
            assert sum(len(v) for v in scan.ready.values()) == new and scan.listed == 3 * new
        out[str(n)] = {"landed_objects": n + 3 * new, "new_clips": new, "tick_ms_median":
                       round(1000 * statistics.median(times), 2), "tick_ms_min": round(1000 * min(times), 2),
                       "build_history_s": round(build_s, 1)}
        del _landed_new
    ratio = out["100000"]["tick_ms_median"] / out["1000"]["tick_ms_median"]
    return {"ticks": out, "ratio_100k_vs_1k": round(ratio, 3), "target_ratio": 2.0, "ok": ratio <= 2.0}


def _new_keys(start: datetime, n: int) -> list[str]:
    from edge_agent.contract.layout import arrival_key, clip_key, sidecar_key

    keys = []
    for i in range(n):
        at = start + timedelta(milliseconds=10 * i)
        day = at.date().isoformat()
        cid = f"{10**9 + i:032x}"
        keys += [clip_key(day, "store-b", "cart-new", cid), sidecar_key(day, "store-b", "cart-new", cid),
                 arrival_key(at, day, "store-b", "cart-new", cid)]
    return keys


def _ingest_clips(n_clips: int, n_frames: int) -> list:
    from tests.support.clips import build_clip

    return [build_clip(seed=i, product=i % 8, device_id=f"cart-{i % 4}", n_frames=n_frames, width=320,
                       height=240, trigger_frames=(n_frames // 2 + 1,)) for i in range(n_clips)]


def _encoders() -> dict:
    from edge_agent.lake import Lake
    from flywheel.depot.embed import DescriptorEncoder, load_encoder

    encoders: dict = {"descriptor": DescriptorEncoder()}
    try:
        from tests.depot.tiny_models import register_tiny_production_model

        reg = Lake.at_path(scratch_dir(prefix="bench-registry-"))
        mid = register_tiny_production_model(reg, scratch_dir())
        encoders["production_model"] = load_encoder({"kind": "production_model", "model_id": mid,
                                                     "imgsz": 96}, reg)
    except Exception as e:  # noqa: BLE001 - report what could be measured
        print(f"production-model encoder unavailable: {e}", file=sys.stderr)
    return encoders


def _per_frame_costs(clips: list, frame_every: int, n_frames: int, repeats: int = 7) -> dict:
    """What one sampled frame costs in each step alone (ms; steps interleaved, best of `repeats`):
    where the pipeline's time beyond decode + embed goes."""
    from flywheel.depot.frames import decode_clip, decode_sampled, sample_indices, to_jpeg

    sub = clips[:8]
    wanted = [set(sample_indices(n_frames, frame_every, {t.frame for t in c.sidecar.triggers}))
              for c in sub]
    pixels = [p for c, w in zip(sub, wanted, strict=True) for p in decode_clip(c.clip_bytes, w)[0].values()]
    steps = {
        "decode_rgb": lambda: [decode_clip(c.clip_bytes, w) for c, w in zip(sub, wanted, strict=True)],
        "decode_rgb_and_measures": lambda: [decode_sampled(c.clip_bytes, w)
                                            for c, w in zip(sub, wanted, strict=True)],
        "jpeg_q90": lambda: [to_jpeg(p, 90) for p in pixels],
        "thumbnail": lambda: [to_jpeg(p, 85, 160) for p in pixels],
    }
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(repeats):
        for k, fn in steps.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    ms = {k: 1000 * min(v) / len(pixels) for k, v in times.items()}
    ms["measures_from_luma"] = max(ms.pop("decode_rgb_and_measures") - ms["decode_rgb"], 0.0)
    return {k: round(v, 3) for k, v in ms.items()}


def bench_ingest(n_clips: int = 48, n_frames: int = 48, frame_every: int = 4, rounds: int = 7,
                 single_worker_rounds: int = 3) -> dict:
    """Paired rounds on the same frames: each round measures the baseline (decode alone, then the
    encoder's forward alone, both over every sampled frame) and the pipeline (ingest + index of the
    day, default workers), in alternating order so drift on a shared machine hits both alike. The
    overhead is the median of the per-round ratios; the best-of ratio (fastest pipeline over fastest
    baseline) is reported beside it, and the target counts as met only when both are within it."""
    from edge_agent.lake import Lake
    from flywheel.depot.config import DepotConfig
    from flywheel.depot.frames import decode_clip, sample_indices
    from flywheel.depot.index import index_day
    from flywheel.depot.ingest import EMBED_BATCH, ingest_day
    from tests.support.clips import build_clip, land

    clips = _ingest_clips(n_clips, n_frames)
    warm_clips = [build_clip(day="2026-11-23", seed=100 + i, n_frames=n_frames, width=320, height=240)
                  for i in range(2)]
    cfg = DepotConfig(frame_every=frame_every)

    def baseline(enc) -> tuple[float, float, int, float]:  # noqa: ANN001
        """Decode alone + the encoder's forward alone, on the same (sampled) frames, same batches.
        (decode s, embed s, frames, CPU s)"""
        c0 = time.process_time()
        t0 = time.perf_counter()
        pixels = []
        for c in clips:
            extra = {t.frame for t in c.sidecar.triggers} | {b.frame for b in c.sidecar.barcode_reads}
            got, _ = decode_clip(c.clip_bytes, set(sample_indices(n_frames, frame_every, extra)))
            pixels += [got[i] for i in sorted(got)]
        t_decode = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(0, len(pixels), EMBED_BATCH):
            enc.encode_images(pixels[i:i + EMBED_BATCH])
        return t_decode, time.perf_counter() - t0, len(pixels), time.process_time() - c0

    def pipeline(enc, name: str, workers: int | None) -> tuple[float, float, object, object, float]:  # noqa: ANN001
        """The assets' functions end to end, in steady state: a previous day is already ingested
        and indexed (imports loaded, the table and its indices exist).
        (ingest s, index s, ingest report, index report, CPU s)"""
        lake = Lake.at_path(scratch_dir(prefix=f"bench-ingest-{name}-"))
        for c in warm_clips:
            land(lake, c)
        ingest_day(lake, "2026-11-23", cfg, encoder=enc)
        index_day(lake, "2026-11-23", enc)
        for c in clips:
            land(lake, c)
        c0 = time.process_time()
        t0 = time.perf_counter()
        rep = ingest_day(lake, DAY, cfg, encoder=enc, workers=workers)  # embeds the decoded pixels
        t_ingest = time.perf_counter() - t0
        t0 = time.perf_counter()
        idx = index_day(lake, DAY, enc)
        t_index = time.perf_counter() - t0
        cpu = time.process_time() - c0
        shutil.rmtree(lake.local_path(), ignore_errors=True)
        return t_ingest, t_index, rep, idx, cpu

    out: dict = {"load_average_at_start": [round(x, 2) for x in os.getloadavg()],
                 "per_frame_ms": _per_frame_costs(clips, frame_every, n_frames)}
    for name, enc in _encoders().items():
        baseline(enc)  # warm-up: imports, allocator, encoder caches
        pipeline(enc, name, None)
        base_runs, pipe_runs, ratios = [], [], []
        for r in range(rounds):
            if r % 2 == 0:
                b, p = baseline(enc), pipeline(enc, name, None)
            else:
                p, b = pipeline(enc, name, None), baseline(enc)
            base_runs.append(b)
            pipe_runs.append(p)
            ratios.append((p[0] + p[1]) / (b[0] + b[1]) - 1)
        single = []
        for r in range(single_worker_rounds):
            if r % 2 == 0:
                b, p = baseline(enc), pipeline(enc, name, 1)
            else:
                p, b = pipeline(enc, name, 1), baseline(enc)
            single.append((p[0] + p[1]) / (b[0] + b[1]) - 1)
        n = base_runs[0][2]
        rep, idx = pipe_runs[0][2], pipe_runs[0][3]
        assert rep.frames_written == n == idx.rows_day == idx.vectors_reused
        med = lambda xs: statistics.median(xs)  # noqa: E731
        t_decode, t_embed = med([x[0] for x in base_runs]), med([x[1] for x in base_runs])
        t_ingest, t_index = med([x[0] for x in pipe_runs]), med([x[1] for x in pipe_runs])
        best_base = min(x[0] + x[1] for x in base_runs)
        best_pipe = min(x[0] + x[1] for x in pipe_runs)
        overhead = med(ratios)
        out[name] = {
            "clips": n_clips, "frames_sampled": n, "frames_decoded": rep.frames_decoded, "dim": enc.dim,
            "rounds": rounds, "workers": min(4, os.cpu_count() or 1), "cpus": os.cpu_count(),
            "decode_s_median": round(t_decode, 3), "embed_s_median": round(t_embed, 3),
            "baseline_s_median": round(t_decode + t_embed, 3),
            "ingest_s_median": round(t_ingest, 3), "index_s_median": round(t_index, 3),
            "pipeline_s_median": round(t_ingest + t_index, 3),
            "index_vectors_s": round(idx.seconds_embed, 3), "index_write_s": round(idx.seconds_write, 3),
            "pipeline_frames_per_s": round(n / (t_ingest + t_index), 1),
            "baseline_frames_per_s": round(n / (t_decode + t_embed), 1),
            "overhead_per_round": [round(x, 3) for x in ratios],
            "overhead": round(overhead, 3),  # median of the paired per-round ratios
            "overhead_best_of": round(best_pipe / best_base - 1, 3),
            "overhead_single_worker": round(med(single), 3),
            # extra work in CPU seconds (all threads), whatever the scheduling: the share of the
            # pipeline that overlap has to hide on a machine with cores to spare
            "cpu_overhead": round(med([p[4] / b[3] - 1
                                       for b, p in zip(base_runs, pipe_runs, strict=True)]), 3),
            "target_overhead": 0.25, "ok": max(overhead, best_pipe / best_base - 1) <= 0.25,
        }
    out["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if out["load_average_at_start"][0] > (os.cpu_count() or 1):
        # other processes took CPU: the pipeline's extra threads win a larger share of it than the
        # single-threaded baseline does, which flatters the ratio; trust a run on a quiet machine
        out["note"] = "machine busy (load average above the core count at start): ratios unreliable"
    return out


def bench_search(n: int = 100_000, dim: int = 256, queries: int = 100) -> dict:
    import lancedb
    import pyarrow as pa

    from flywheel.depot.index import SCALAR_INDICES

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(64, dim)).astype(np.float32)
    vec = centers[rng.integers(0, 64, n)] + 0.5 * rng.normal(size=(n, dim)).astype(np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    days = [(datetime(2026, 10, 1) + timedelta(days=d)).date().isoformat() for d in range(30)]
    table = pa.table({
        "frame_id": [f"f{i:08d}" for i in range(n)],
        "clip_id": [f"c{i // 12:07d}" for i in range(n)],
        "date": pa.array(np.array(days)[rng.integers(0, 30, n)]),
        "store_id": pa.array(np.array([f"store-{s}" for s in range(10)])[rng.integers(0, 10, n)]),
        "device_id": pa.array(np.array([f"cart-{d:03d}" for d in range(200)])[rng.integers(0, 200, n)]),
        "model_version": pa.array(np.array(["m-1", "m-2", "m-3"])[rng.integers(0, 3, n)]),
        "prediction": pa.array(np.array([f"{p:013d}" for p in range(100)])[rng.integers(0, 100, n)]),
        "confidence": pa.array(rng.random(n)),
        "is_trigger_frame": pa.array(rng.random(n) < 0.1),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), dim),
    })
    db = lancedb.connect(scratch_dir(prefix="bench-search-"))
    t0 = time.perf_counter()
    tbl = db.create_table("frames", data=table)
    for col, kind in SCALAR_INDICES.items():
        if col in table.column_names:
            tbl.create_scalar_index(col, index_type=kind)
    t_scalar = time.perf_counter() - t0
    t0 = time.perf_counter()
    tbl.create_index(metric="cosine", vector_column_name="vector", index_type="IVF_PQ",
                     num_partitions=int(np.sqrt(n)), num_sub_vectors=dim // 16)
    t_vector = time.perf_counter() - t0
    where = "store_id = 'store-3' AND date >= '2026-10-05' AND date <= '2026-10-19' AND confidence < 0.5"
    qs = vec[rng.integers(0, n, queries)] + 0.1 * rng.normal(size=(queries, dim)).astype(np.float32)

    def run(exact: bool) -> tuple[list[float], list[list[str]]]:
        lat, ids = [], []
        for q in qs:
            t = time.perf_counter()
            b = tbl.search(q, vector_column_name="vector").distance_type("cosine")
            b = b.where(where, prefilter=True)
            if exact:
                b = b.bypass_vector_index()
            else:
                b = b.nprobes(20).refine_factor(5)
            rows = b.select(["frame_id", "_distance"]).limit(10).to_list()
            lat.append(1000 * (time.perf_counter() - t))
            ids.append([r["frame_id"] for r in rows])
        return lat, ids

    run(False)  # warm caches
    ann, ann_ids = run(False)
    exact, exact_ids = run(True)
    recall = float(np.mean([len(set(a) & set(e)) / max(len(e), 1) for a, e in zip(ann_ids, exact_ids,
                                                                                    strict=True)]))
    pct = lambda xs, p: round(float(np.percentile(xs, p)), 2)  # noqa: E731
    return {
        "rows": n, "dim": dim, "filter": where,
        "filtered_rows": tbl.count_rows(where),
        "scalar_index_build_s": round(t_scalar, 2), "vector_index_build_s": round(t_vector, 2),
        "ann_p50_ms": pct(ann, 50), "ann_p99_ms": pct(ann, 99),
        "exact_p50_ms": pct(exact, 50), "exact_p99_ms": pct(exact, 99),
        "ann_vs_exact_p50_ratio": round(pct(ann, 50) / pct(exact, 50), 3), "recall_at_10": round(recall, 3),
    }


def main(out_dir: Path) -> dict:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    result = {"sensor": bench_sensor(), "ingest": bench_ingest(), "search": bench_search()}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "depot.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("var/bench")), indent=1))
