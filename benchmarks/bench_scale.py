"""Scale: Depot ingest on a real multi-node Ray cluster, and a fleet sizing model from measured costs.

1. ray_ingest: capture days ingested as Ray tasks (one CPU each, `ingest_day` with one decode
   thread: the work of a depot_frames step) on a cluster started here (a head with no CPUs, two
   workers of one CPU, separate `ray start` processes). Throughput (frames/s) with the tasks pinned
   to one worker node (its custom resource) vs free to use both, alternating rounds on fresh days;
   scaling efficiency = fps(2 nodes) / (2 * fps(1 node)). This machine has 2 cores shared with
   other work: the ceiling is the cores, not Ray (the load average is reported).
2. sizing: per-frame costs measured on a simulated fleet day (benchmarks.bench_label: real edge
   agents, the Depot's ingest, the empty filter, the pre-labelers and the calibrated vote), scaled to
   100 / 1,000 / 10,000 carts: clips, bytes and frames per day, ingest and labelling core-hours per
   day, LanceDB rows (frames kept a year), and review hours per week under the routing rule
   (doubtful frames routed to people, each costing TimeModel.expected_task_s; the audit sample on
   top) against the routing budget.

Run: `python -m benchmarks.bench_scale [out_dir]` (writes out_dir/scale.json).
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.scratch import scratch_dir

ROOT = Path(__file__).resolve().parents[1]
CARTS = (100, 1_000, 10_000)
# assumption: a store's cart is taken for 12 shopping trips a day. The simulator runs trips back to
# back (a simulated minute is dense with insertions), so the fleet scales per trip, not per minute.
TRIPS_PER_CART_DAY = 12
RETENTION_DAYS = 365  # LanceDB keeps a year of frames searchable
DOUBTFUL_CONFIDENCE = 0.5  # assumption: a frame routed to review is right half the time


def _ingest_task(root: str, day: str) -> dict:
    """One capture day, as a depot_frames step does it (on whichever node Ray picks)."""
    import ray

    from edge_agent.lake import Lake
    from flywheel.depot.ingest import ingest_day

    t0, c0 = time.perf_counter(), time.process_time()
    report = ingest_day(Lake.at_path(Path(root)), day, now=datetime.now(UTC), workers=1)
    return {"day": day, "frames": report.frames_decoded, "clips": len(report.clips_ingested),
            "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
            "node": ray.get_runtime_context().get_node_id()}


def _land_days(root: Path, days: list[str], clips_per_day: int) -> int:
    from edge_agent.lake import Lake
    from tests.support.clips import build_clip, land

    lake = Lake.at_path(root)
    n = 0
    for i, day in enumerate(days):
        for k in range(clips_per_day):
            land(lake, build_clip(day=day, device_id=f"cart-{k:03d}", seed=1000 * i + k, product=k,
                                  n_frames=48, width=320, height=240, trigger_frames=(10, 30)))
            n += 1
    return n


def bench_ray_ingest(rounds: int = 3, days_per_round: int = 4, clips_per_day: int = 6) -> dict:
    import ray

    from flywheel.devstack.ray_nodes import ray_nodes

    work = scratch_dir(prefix="bench-scale-")
    plan = []  # alternate 1 node / 2 nodes, each round on days never ingested
    for r in range(rounds):
        for nodes in (1, 2):
            days = [f"2026-{10 + r:02d}-{nodes * 10 + d:02d}" for d in range(days_per_round)]
            plan.append((nodes, days))
    t0 = time.perf_counter()
    _land_days(work / "lake", [d for _, days in plan for d in days], clips_per_day)
    land_s = time.perf_counter() - t0
    runs: dict[int, list[dict]] = {1: [], 2: []}
    with ray_nodes(workers=2, worker_cpus=1, extra_env={"PYTHONPATH": str(ROOT)}) as cluster:
        ray.init(address=cluster.address, log_to_driver=False)
        try:
            task = ray.remote(num_cpus=1, max_retries=0)(_ingest_task)
            warm = [task.options(resources={f"worker-{i}": 0.01}).remote(str(work / "lake"), "2000-01-01")
                    for i in (1, 2)]
            ray.get(warm)  # worker processes up, imports done: measure ingest, not start-up
            for nodes, days in plan:
                pin = {"resources": {"worker-1": 0.01}} if nodes == 1 else {}
                t0 = time.perf_counter()
                out = ray.get([task.options(**pin).remote(str(work / "lake"), d) for d in days])
                wall = time.perf_counter() - t0
                frames = sum(o["frames"] for o in out)
                runs[nodes].append({"wall_s": round(wall, 2), "frames": frames,
                                    "fps": round(frames / wall, 2),
                                    "nodes_used": len({o["node"] for o in out}),
                                    "cpu_s_per_frame": round(sum(o["cpu_s"] for o in out) / frames, 5)})
        finally:
            ray.shutdown()

    def fps(n: int) -> float:
        return sum(r["frames"] for r in runs[n]) / sum(r["wall_s"] for r in runs[n])

    return {"rounds": runs, "days_per_round": days_per_round, "clips_per_day": clips_per_day,
            "land_s": round(land_s, 1), "fps_1_node": round(fps(1), 2), "fps_2_nodes": round(fps(2), 2),
            "speedup_2_vs_1": round(fps(2) / fps(1), 3),
            "scaling_efficiency": round(fps(2) / (2 * fps(1)), 3),
            "cores": os.cpu_count(), "loadavg": Path("/proc/loadavg").read_text().split()[:3]}


def sizing(label: dict, carts: tuple[int, ...] = CARTS) -> dict:
    """Fleet-scale figures from one measured simulated fleet day (bench_label's result)."""
    from flywheel.label.routing import RoutingConfig, audit_sample_size

    day = label["day"]
    trips = max(day["sessions"], 1)
    clips_t = day["clips"] / trips
    bytes_t = day["uploaded_bytes"] / trips
    frames_t = day["frames"] / trips
    flt, ens, thr = label["filter"], label["ensemble"], label["throughput"]
    kept_share = flt["kept"] / max(flt["frames_in"], 1)
    auto_share = ens["auto_accepted_share"]
    labelled = ens["labelled_share"]
    routing = RoutingConfig()
    tm = routing.time
    # a doubtful frame with a proposal costs a verify plus a pick when the proposal is wrong
    # (DOUBTFUL_CONFIDENCE); without one, a pick from scratch
    review_s = (labelled * tm.expected_task_s(DOUBTFUL_CONFIDENCE, routing.n_classes)
                + (1 - labelled) * tm.expected_task_s(None, routing.n_classes))
    audit_s = tm.verify_s
    out = {"assumptions": {
        "trips_per_cart_day": TRIPS_PER_CART_DAY, "retention_days": RETENTION_DAYS,
        "doubtful_confidence": DOUBTFUL_CONFIDENCE, "review_s_per_doubtful_frame": round(review_s, 2),
        "audit": f"a sample of {audit_sample_size(10**6)} auto-accepted frames per day (95 % interval "
                 f"half-width {routing.audit_half_width})",
        "routing_budget_h_per_week_per_day_run": round(routing.budget_s * 7 / 3600, 2),
        "near_duplicate_grouping": "review hours bracketed: one task per doubtful frame (upper) and "
                                   "one per clip with doubtful frames (lower: a clip is one insertion)"},
        "measured": {"clips_per_trip": round(clips_t, 2), "bytes_per_clip":
                     round(bytes_t / max(clips_t, 1e-9)), "frames_per_clip":
                     round(frames_t / max(clips_t, 1e-9), 1),
                     "ingest_core_s_per_frame": round(1 / thr["ingest_frames_per_s"], 4),
                     "label_core_s_per_frame": round(1 / thr["prelabel_frames_per_s"], 4),
                     "kept_share": round(kept_share, 3), "auto_accepted_share": auto_share,
                     "from_day": day}}
    for n in carts:
        clips = clips_t * TRIPS_PER_CART_DAY * n
        frames = frames_t * TRIPS_PER_CART_DAY * n
        doubtful = frames * kept_share * (1 - auto_share)
        audited = audit_sample_size(round(frames * kept_share * auto_share), routing.audit_half_width,
                                    routing.audit_design_error)
        review_h_week = (doubtful * review_s + audited * audit_s) * 7 / 3600
        per_clip = frames / max(clips, 1e-9)
        review_h_week_clips = (doubtful / per_clip * review_s + audited * audit_s) * 7 / 3600
        out[str(n)] = {
            "clips_per_day": round(clips),
            "gb_per_day": round(bytes_t * TRIPS_PER_CART_DAY * n / 1e9, 2),
            "frames_per_day": round(frames),
            "ingest_core_h_per_day": round(frames / thr["ingest_frames_per_s"] / 3600, 2),
            "label_core_h_per_day": round(frames / thr["prelabel_frames_per_s"] / 3600, 2),
            "lancedb_rows": round(frames * RETENTION_DAYS),
            "review_h_per_week": round(review_h_week, 1),
            "review_h_per_week_one_task_per_clip": round(review_h_week_clips, 1),
            "review_h_per_week_within_budget": round(min(review_h_week, routing.budget_s * 7 / 3600), 2),
            "deferred_share_at_budget": round(max(0.0, 1 - routing.budget_s * 7 / 3600 / review_h_week), 4)
            if review_h_week else 0.0,
        }
    return out


def main(out_dir: Path) -> dict:
    from benchmarks.bench_label import bench as bench_label

    out_dir.mkdir(parents=True, exist_ok=True)
    result = {"ray_ingest": bench_ray_ingest()}
    result["sizing"] = sizing(bench_label(carts=2, minutes=1.0, seed=7, ocr=True))
    (out_dir / "scale.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "var" / "bench"), indent=1))
