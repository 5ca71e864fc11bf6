"""What the Depot's hardening costs (issue 14), each against a baseline measured in the same run.

1. sweep: one tick of the rolling sweep (`plan_sweep`, 5,000 keys a tick) over 100,000 vs 10,000
   landed objects: ratio of median tick times (bounded per tick: target <= 2, as for the sensor).
2. video checks: decoding the sampled frames while holding every frame to the sidecar's codec and
   size, against the same decode without the checks (target ratio <= 1.05).
3. re-run of an ingested day: `ingest_day` on a day whose clips are all ingested and unchanged (the
   ledger tells "same clip, same sidecar" from the listing alone), against listing the day plus
   reading its frames' clip ids (what a re-run cost before the ledger): ratio, and the lake reads
   each makes (target: reads independent of the number of clips).

Run: `python -m benchmarks.bench_depot_guard [out_dir]` (writes out_dir/depot_guard.json).
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.bench_depot import _landed
from benchmarks.scratch import scratch_dir

DAY = "2026-11-24"


def _median_ms(fn, repeats: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(1000 * statistics.median(times), 2)


def bench_sweep(repeats: int = 5, limit: int = 5000) -> dict:
    from edge_agent.contract.layout import LANDING_CLIPS
    from edge_agent.lake import Lake
    from flywheel.depot.landing import SweepCursor, plan_sweep

    out = {}
    for n in (10_000, 100_000):
        root = scratch_dir(prefix=f"bench-sweep-{n}-")
        try:
            lake = Lake.at_path(root)
            _landed(root, n, datetime(2026, 9, 1, tzinfo=UTC))  # clip, sidecar and marker per clip
            now = time.time() + 3600
            keys = [i.key for i in lake.list(LANDING_CLIPS)]
            mid = keys[len(keys) // 2 - limit // 2]
            cursor = SweepCursor(after=mid)  # a tick in the middle of a pass

            def tick(lake=lake, now=now, cursor=cursor) -> None:  # noqa: ANN001
                plan = plan_sweep(lake.list(LANDING_CLIPS, start_after=cursor.after, limit=limit), cursor,
                                  now=now, limit=limit, settle_s=900.0)
                assert plan.listed == limit

            out[str(n)] = {"landed_objects": n, "keys_per_tick": limit,
                           "tick_ms_median": _median_ms(tick, repeats)}
        finally:
            shutil.rmtree(root)
    ratio = out["100000"]["tick_ms_median"] / out["10000"]["tick_ms_median"]
    return {"ticks": out, "ratio_100k_vs_10k": round(ratio, 3), "target_ratio": 2.0, "ok": ratio <= 2.0}


def bench_video_checks(n_clips: int = 12, repeats: int = 5) -> dict:
    from flywheel.depot.frames import VideoSpec, decode_sampled, sample_indices
    from tests.support.clips import build_clip

    clips = [build_clip(seed=i, n_frames=48, width=320, height=240) for i in range(n_clips)]
    wanted = set(sample_indices(48, 4, {25}))
    spec = VideoSpec("h264", 320, 240, 48)
    rounds = {"plain": [], "checked": []}
    for _ in range(repeats):  # alternate: the machine is shared and noisy
        for name, expect in (("plain", None), ("checked", spec)):
            t0 = time.perf_counter()
            for c in clips:
                decode_sampled(c.clip_bytes, wanted, 1, expect)
            rounds[name].append(time.perf_counter() - t0)
    plain, checked = statistics.median(rounds["plain"]), statistics.median(rounds["checked"])
    ratio = checked / plain
    return {"clips": n_clips, "frames_per_clip": 48, "plain_ms": round(1000 * plain, 1),
            "checked_ms": round(1000 * checked, 1), "ratio": round(ratio, 3), "target_ratio": 1.05,
            "ok": ratio <= 1.05}


class _CountingLake:
    """Counts reads (get/head) through to a real lake."""

    def __init__(self, lake) -> None:  # noqa: ANN001
        self.lake, self.reads = lake, 0

    def get(self, *a, **k):  # noqa: ANN002, ANN003, ANN201
        self.reads += 1
        return self.lake.get(*a, **k)

    def head(self, *a, **k):  # noqa: ANN002, ANN003, ANN201
        self.reads += 1
        return self.lake.head(*a, **k)

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self.lake, name)


def bench_rerun(sizes: tuple[int, ...] = (8, 32), repeats: int = 5) -> dict:
    from edge_agent.lake import Lake
    from flywheel.depot.ingest import ingest_day, read_frames
    from flywheel.depot.landing import day_objects
    from tests.support.clips import land_clip

    out = {}
    for n in sizes:
        root = scratch_dir(prefix=f"bench-rerun-{n}-")
        try:
            lake = Lake.at_path(root)
            for i in range(n):
                land_clip(lake, seed=i, device_id=f"cart-{i % 4}", n_frames=16)
            assert len(ingest_day(lake, DAY).clips_ingested) == n
            counting = _CountingLake(lake)

            def rerun(counting=counting, n=n) -> None:  # noqa: ANN001
                counting.reads = 0
                r = ingest_day(counting, DAY)
                assert r.clips_already == n and not r.rejections

            def before(lake=lake) -> None:  # noqa: ANN001
                list(day_objects(lake, DAY))
                read_frames(lake, DAY, columns=["clip_id"])

            rerun_ms, base_ms = _median_ms(rerun, repeats), _median_ms(before, repeats)
            out[str(n)] = {"clips": n, "rerun_ms": rerun_ms, "list_and_read_ids_ms": base_ms,
                           "ratio": round(rerun_ms / base_ms, 3), "lake_reads": counting.reads}
        finally:
            shutil.rmtree(root)
    reads = {v["lake_reads"] for v in out.values()}
    return {"days": out, "reads_independent_of_clips": len(reads) == 1, "ok": len(reads) == 1}


def main(out_dir: Path) -> dict:
    result = {"sweep": bench_sweep(), "video_checks": bench_video_checks(), "rerun": bench_rerun()}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "depot_guard.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("var/bench")), indent=1))
