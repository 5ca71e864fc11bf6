"""A simulated fleet day for the Label stage's tests and benchmark: carts through real edge agents,
the Depot's real ingest, the catalog imported, and the simulator's ground truth per Depot frame
(evaluation code only: labelers never see it)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.lake import Lake


@dataclass
class FleetDay:
    lake: Lake
    day: str
    truth: dict[str, object] = field(default_factory=dict)  # frame_id -> FrameTruth
    frames: int = 0
    ingest_s: float = 0.0  # Depot ingest wall time for the day (the throughput reference)
    fleet: dict = field(default_factory=dict)
    teacher_dir: Path | None = None  # the model slot one cart ran (the bootstrap: the teacher)


def build_fleet_day(lake: Lake, work: Path, *, carts: int = 3, minutes: float = 1.0, seed: int = 0,
                    day: str = "2026-11-24", world_seed: int | None = None) -> FleetDay:
    """`world_seed` (default: `seed`) fixes the catalog, `seed` the shoppers (as simulate_fleet)."""
    from flywheel.depot.ingest import ingest_day, read_frames
    from flywheel.fleet.runner import simulate_fleet
    from flywheel.fleet.truth import fleet_truth, truth_key
    from flywheel.learner.reference_sets import import_catalog
    from flywheel.sim import default_world

    world = seed if world_seed is None else world_seed
    summary = simulate_fleet(lake, carts=carts, minutes=minutes, seed=seed, day=day, work_dir=work,
                             progress=False, world_seed=world)
    import_catalog(lake, default_world(world, 3).catalog.to_json())
    t0 = time.perf_counter()
    report = ingest_day(lake, day)
    ingest_s = time.perf_counter() - t0
    truth = fleet_truth(carts, minutes, seed, day, world_seed=world)
    frames = read_frames(lake, day, columns=["frame_id", "device_id", "captured_at"])
    by_frame = {}
    for fid, dev, at in zip(*(frames.column(c).to_pylist() for c in ("frame_id", "device_id", "captured_at")),
                            strict=True):
        by_frame[fid] = truth[truth_key(dev, at)]
    slots = sorted(p for p in (work / "model").glob("*") if (p / "active").exists())
    return FleetDay(lake, day, by_frame, report.rows_total, ingest_s, summary.as_dict(),
                    slots[0] if slots else None)
