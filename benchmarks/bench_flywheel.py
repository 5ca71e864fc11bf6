"""The wheel's efficacy: does each turn make the fleet's model better while the human cost stays
flat as the fleet grows? Runs the demo's turns (jobs.demo: real agents, OTA, ingest, Label with
the simulated annotator, training on Ray, gate, release, staged rollout) on temporary lakes.

1. accuracy: production top-1 (pooled store sets, the gate's target) after turn 1 minus the
   bootstrap model's (target >= +15 points), and the turns needed to reach 90 %;
2. human cost: human seconds per accepted label (auto + human merged labels) against labelling
   every one of them from scratch (picking the SKU: TimeModel.pick_s), target >= 85 % less, at
   the merged-label accuracy measured against the simulator's truth (target >= 99 %);
3. scale: the same turn with a 10x larger fleet under the same routing rule (budget, threshold):
   human-reviewed items and seconds 10x / 1x (target <= 1.5), and the cloud-side turn time (the
   cloud steps' wall time from the last clip landed to 100 % rollout) at 1x and 10x.

Both scale runs start from one copy of the same bootstrap turn. Sizes and epochs are in the JSON.
Run: `python -m benchmarks.bench_flywheel [out_dir] [--turns 3 --carts 4 --minutes 0.75 --epochs 3]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

TARGET_GAIN = 0.15
TARGET_TOP1 = 0.90
TARGET_SAVING = 0.85
TARGET_MERGED = 0.99
TARGET_SCALE = 1.5


@contextmanager
def _place(root: Path):
    """Point the local deployment (lake, instance, release keys) at `root`."""
    keys = ("DAGSTER_HOME", "FLYWHEEL_LAKE_ROOT", "FLYWHEEL_RELEASE_KEYS_DIR", "FLYWHEEL_DEPLOYMENT")
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update(DAGSTER_HOME=str(root / "dagster_home"), FLYWHEEL_LAKE_ROOT=str(root / "lake"),
                      FLYWHEEL_RELEASE_KEYS_DIR=str(root / "release_keys"), FLYWHEEL_DEPLOYMENT="local")
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _turns(root: Path, turns: int, settings) -> list:
    from edge_agent.lake import Lake
    from flywheel.loop.turns import read_turns
    from jobs.demo import run_demo

    with _place(root):
        code = run_demo(turns, settings, root / "demo", fresh=False, stop_after=None)
    if code != 0:
        raise RuntimeError(f"the demo's turns failed in {root} (exit {code})")
    return read_turns(Lake.at_path(root / "lake"))


def _turns_to(records, target: float) -> int | None:
    return next((r.turn for r in records if (r.production_pooled or 0.0) >= target), None)


def _scratch_seconds(n_labels: int) -> float:
    from flywheel.label.routing import TimeModel
    from flywheel.sim import default_world

    return n_labels * TimeModel().pick_s(len(default_world(0, 3).catalog.products))


def bench(turns: int = 3, carts: int = 4, minutes: float = 0.75, epochs: int = 3,
          scale: int = 10, work: Path | None = None) -> dict:
    from jobs.turns import WheelSettings

    tmp = tempfile.TemporaryDirectory(prefix="bench-flywheel-") if work is None else None
    root = Path(tmp.name) if tmp else work
    settings = WheelSettings(carts=carts, minutes=minutes, epochs=epochs)
    t0 = time.perf_counter()
    try:
        base, big = root / "x1", root / f"x{scale}"
        _turns(base, 0, settings)  # the bootstrap turn, shared by both fleet sizes
        if not big.exists():  # a kept --work resumes both runs where they stopped
            shutil.copytree(base, big, symlinks=True)
        records = _turns(base, turns, settings)
        big_records = _turns(big, 1, dataclasses.replace(settings, carts=carts * scale))
    finally:
        if tmp:
            tmp.cleanup()
    boot, first = records[0], records[1]
    gain = (first.production_pooled or 0.0) - (boot.production_pooled or 0.0)
    fleet_turns = [r for r in records if r.turn > 0]
    labels = sum(r.auto_labelled + r.human_frames for r in fleet_turns)
    human_s = sum(r.human_seconds for r in fleet_turns)
    scratch = _scratch_seconds(labels)
    merged = [r.merged_accuracy for r in fleet_turns if r.merged_accuracy is not None]
    small, large = first, big_records[1]
    out = {
        "sizes": {"turns": turns, "carts": carts, "minutes_per_cart": minutes, "epochs": epochs,
                  "scale": scale, "frames_per_turn": [r.frames for r in fleet_turns]},
        "per_turn": [dataclasses.asdict(r) for r in records],
        "accuracy": {
            "bootstrap_production_top1": boot.production_pooled,
            "after_turn_1_production_top1": first.production_pooled,
            "gain_points": round(100 * gain, 2), "target_gain_points": 100 * TARGET_GAIN,
            "meets_gain": gain >= TARGET_GAIN,
            "turns_to_90": _turns_to(records, TARGET_TOP1),
            "production_top1_per_turn": [r.production_pooled for r in records],
        },
        "human_cost": {
            "accepted_labels": labels, "human_seconds": round(human_s, 1),
            "seconds_per_label": round(human_s / labels, 4) if labels else None,
            "from_scratch_seconds_per_label": round(scratch / labels, 4) if labels else None,
            "saving": round(1 - human_s / scratch, 4) if scratch else None,
            "target_saving": TARGET_SAVING,
            "merged_accuracy_min": min(merged) if merged else None,
            "target_merged_accuracy": TARGET_MERGED,
            "meets": bool(scratch and 1 - human_s / scratch >= TARGET_SAVING and merged
                          and min(merged) >= TARGET_MERGED),
        },
        "scale": {
            "fleet_1x": {"carts": carts, "clips": small.clips, "frames": small.frames,
                         "human_items": small.human_items, "human_seconds": small.human_seconds,
                         "turn_time_s": small.turn_time_s, "rollout": small.rollout_stage,
                         "cloud_step_seconds": small.seconds},
            f"fleet_{scale}x": {"carts": carts * scale, "clips": large.clips, "frames": large.frames,
                                "human_items": large.human_items, "human_seconds": large.human_seconds,
                                "turn_time_s": large.turn_time_s, "rollout": large.rollout_stage,
                                "cloud_step_seconds": large.seconds},
            "human_items_ratio": round(large.human_items / small.human_items, 3)
            if small.human_items else None,
            "human_seconds_ratio": round(large.human_seconds / small.human_seconds, 3)
            if small.human_seconds else None,
            "target_ratio": TARGET_SCALE,
            "frames_ratio": round(large.frames / small.frames, 3) if small.frames else None,
            "turn_time_ratio": round(large.turn_time_s / small.turn_time_s, 3)
            if small.turn_time_s and large.turn_time_s else None,
        },
        "seconds_total": round(time.perf_counter() - t0, 1),
    }
    with open("/proc/loadavg") as f:
        out["loadavg"] = f.read().split()[:3]
    return out


def main(out_dir: Path | str = "var/bench", argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--carts", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=0.75)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--work", type=Path, help="keep the lakes here (default: a temp dir)")
    args = parser.parse_args(argv or [])
    result = bench(args.turns, args.carts, args.minutes, args.epochs, args.scale, args.work)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "flywheel.json").write_text(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    pos = [a for a in sys.argv[1:2] if not a.startswith("--")]
    main(pos[0] if pos else "var/bench", sys.argv[1 + len(pos):])
