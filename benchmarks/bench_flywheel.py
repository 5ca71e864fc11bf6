"""The wheel's efficacy: does each turn make the fleet's model better while the human cost stays
flat as the fleet grows? Runs the demo's turns (jobs.demo: real agents, OTA, ingest, Label with
the simulated annotator, training on Ray, gate, release, staged rollout) on temporary lakes.

1. accuracy: production top-1 (pooled store sets, the gate's target) after turn 1 minus the
   bootstrap model's (target >= +15 points), and the turns needed to reach 90 %;
2. human cost: human seconds per accepted label (auto + human merged labels) against labelling
   every one of them from scratch (picking the SKU: TimeModel.pick_s), target >= 85 % less, at
   the merged-label accuracy measured against the simulator's truth (target >= 99 %);
3. scale: the same turn with a 10x larger fleet under the same routing rule (budget, threshold):
   human-reviewed items and seconds 10x / 1x (target <= 1.5), and the cloud-side turn time at 1x
   and 10x: the cloud stages' wall time from the last clip landed to 100 % rollout when the turn
   shipped in full, else to the decision that stopped it (`turn_time_until`: gate_blocked,
   rollout_held, rollout_halted), with each stage's seconds (ingest, label, merge, dataset,
   train, gate, release, rollout) and their 10x / 1x ratios.

4. initialisation: turn 1's dataset version trained again from scratch (and with rare classes
   repeated, `TrainConfig.balance`) beside the turn's own candidate, fine-tuned from the bootstrap
   model (`TrainConfig.init = "parent"`, the weekly job's default): production top-1 of each on the
   same frozen sets with the same code, and parent / scratch as a ratio.

Both scale runs start from one copy of the same bootstrap turn. Sizes and epochs are in the JSON;
after each phase the JSON is written again, so a run stopped early still reports what it reached.
Run: `python -m benchmarks.bench_flywheel [out_dir] [--turns 3 --carts 4 --minutes 0.75 --epochs N
--max-boxes N --no-detector-hints]`
(--epochs: crop-classifier epochs per turn; default the weekly job's, as a real turn trains).
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


def _step(root: Path, turn: int, step: str) -> dict | None:
    """A finished step's result from a run's progress file (None: not reached yet)."""
    path = root / "demo" / "progress.json"
    if not path.exists():
        return None
    r = json.loads(path.read_text())["turns"].get(str(turn), {}).get(step)
    return r["out"] if r else None


def _records(root: Path) -> list:
    from edge_agent.lake import Lake
    from flywheel.loop.turns import read_turns

    return read_turns(Lake.at_path(root / "lake")) if (root / "lake").exists() else []


def _fleet(root: Path, carts: int) -> dict:
    """Turn 1 of one fleet size: what it collected, what people reviewed, the cloud-side time."""
    ingest, review, label = (_step(root, 1, s) for s in ("ingest", "review", "label"))
    records = _records(root)
    rec = next((r for r in records if r.turn == 1), None)
    gain = _turn_1_gain(records)
    return {"carts": carts,
            # production top-1 after this fleet's turn 1 (from the same bootstrap model), and the gain
            "production_top1": rec.production_pooled if rec else None,
            "gain_points": round(100 * gain, 2) if gain is not None else None,
            "clips": sum(i["clips"] for i in ingest) if ingest else None,
            "frames": sum(i["frames"] for i in ingest) if ingest else None,
            "review_tasks_planned": label["tasks"] if label else None,
            "planned_human_s": label["planned_human_s"] if label else None,
            "human_items": review["tasks"] if review else None,
            "human_seconds": review["seconds"] if review else None,
            "human_boxes": review.get("boxes", 0) if review else None,
            # cloud seconds from the last clip landed to the turn's rollout decision, and which one:
            # full_rollout (100 %), gate_blocked, rollout_held or rollout_halted
            "turn_time_s": rec.turn_time_s if rec else None,
            "turn_time_until": rec.turn_time_until if rec else None,
            "rollout": rec.rollout_stage if rec else None,
            "stage_seconds": rec.stage_seconds if rec else None,
            "step_seconds": rec.seconds if rec else None, "finished": rec is not None}


def _turn_1_gain(records: list) -> float | None:
    """Production top-1 after turn 1 minus the bootstrap's (turn 0), when both are known."""
    by_turn = {r.turn: r.production_pooled for r in records}
    boot, first = by_turn.get(0), by_turn.get(1)
    return first - boot if first is not None and boot is not None else None


def _ratio(a, b) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _stage_ratios(small: dict | None, large: dict | None) -> dict[str, float | None]:
    """Per cloud stage: seconds at the larger fleet / at 1x (which stages grow with the fleet)."""
    from flywheel.loop.turns import CLOUD_STAGES

    small, large = small or {}, large or {}
    return {k: _ratio(large.get(k), small.get(k)) for k in CLOUD_STAGES if k in small or k in large}


def summarize(root: Path, turns: int, carts: int, minutes: float, epochs: int | None,
              scale: int) -> dict:
    """The JSON from the runs under `root` (x1, x<scale>); parts not reached yet are None."""
    records = [r for r in _records(root / "x1") if r.turn <= turns]
    boot = records[0] if records else None
    first = records[1] if len(records) > 1 else None
    small, large = _fleet(root / "x1", carts), _fleet(root / f"x{scale}", carts * scale)
    gain = _turn_1_gain(records)
    fleet_turns = [r for r in records if r.turn > 0]
    # from the finished merge and review steps (a turn still training counts already)
    done = [(m, v) for k in range(1, turns + 1)
            if (m := _step(root / "x1", k, "merge")) and (v := _step(root / "x1", k, "review"))]
    labels = sum(m["auto"] + v["frames"] for m, v in done)
    human_s = sum(v["seconds"] for _, v in done)
    boxes = sum(v.get("boxes", 0) for _, v in done)
    box_s = sum(v.get("box_seconds", 0.0) for _, v in done)
    scratch = _scratch_seconds(labels) if labels else 0.0
    # a from-scratch labeller would draw the boxes the model got too (extreme clicking, as ours)
    scratch_boxed = scratch + box_s
    merged = [r.merged_accuracy for r in fleet_turns if r.merged_accuracy is not None]
    return {
        "sizes": {"turns": turns, "carts": carts, "minutes_per_cart": minutes,
                  "epochs": epochs if epochs is not None else "the weekly job's (TrainConfig)",
                  "scale": scale, "frames_per_turn": [r.frames for r in fleet_turns]},
        "complete": len(records) == turns + 1 and large["finished"],
        "per_turn": [dataclasses.asdict(r) for r in records],
        "accuracy": {
            "bootstrap_production_top1": boot.production_pooled if boot else None,
            "after_turn_1_production_top1": first.production_pooled if first else None,
            "gain_points": round(100 * gain, 2) if gain is not None else None,
            "target_gain_points": 100 * TARGET_GAIN,
            "meets_gain": gain is not None and gain >= TARGET_GAIN,
            # turn 1's gain per fleet size (the same bootstrap; the week's data grows with the fleet)
            "gain_points_by_fleet": {f"{f['carts']} carts": f["gain_points"] for f in (small, large)},
            "turns_to_90": _turns_to(records, TARGET_TOP1),
            "production_top1_per_turn": [r.production_pooled for r in records],
            "gate_notes": [r.note for r in records if r.note],
        },
        "human_cost": {
            "accepted_labels": labels, "human_seconds": round(human_s, 1),
            "seconds_per_label": round(human_s / labels, 4) if labels else None,
            "from_scratch_seconds_per_label": round(scratch / labels, 4) if labels else None,
            "saving": round(1 - human_s / scratch, 4) if scratch else None,
            # boxes drawn where the production detector missed the item (Label's max_boxes), part
            # of human_seconds; the saving against picking the SKU and drawing those same boxes
            "boxes_drawn": boxes, "box_seconds": round(box_s, 1),
            "saving_vs_sku_and_boxes": round(1 - human_s / scratch_boxed, 4) if scratch_boxed else None,
            "target_saving": TARGET_SAVING,
            "merged_accuracy_min": min(merged) if merged else None,
            "target_merged_accuracy": TARGET_MERGED,
            "meets": bool(scratch and 1 - human_s / scratch >= TARGET_SAVING and merged
                          and min(merged) >= TARGET_MERGED),
        },
        "scale": {
            "fleet_1x": small, f"fleet_{scale}x": large,
            "human_items_ratio": _ratio(large["human_items"], small["human_items"]),
            "human_seconds_ratio": _ratio(large["human_seconds"], small["human_seconds"]),
            "target_ratio": TARGET_SCALE,
            "frames_ratio": _ratio(large["frames"], small["frames"]),
            "turn_time_1x_s": small["turn_time_s"], f"turn_time_{scale}x_s": large["turn_time_s"],
            # the ratio compares like with like only when both turns ended at the same decision
            "turn_time_until": {"1x": small["turn_time_until"], f"{scale}x": large["turn_time_until"]},
            "turn_time_ratio": _ratio(large["turn_time_s"], small["turn_time_s"]),
            "stage_seconds_ratio": _stage_ratios(small["stage_seconds"], large["stage_seconds"]),
        },
    }


INIT_VARIANTS = {"scratch": {"init": "scratch"}, "parent_balanced": {"balance": 0.5}}


def compare_init(root: Path, epochs: int | None, variants: dict[str, dict] | None = None) -> dict:
    """Turn 1's dataset trained again with each variant's TrainConfig overrides, from the same
    parent; every model (the turn's candidate too) evaluated on the gate's sets by the same code.
    Cached in <root>/init_comparison.json (a resumed run does not train them again)."""
    from edge_agent.lake import Lake
    from flywheel.learner import reference_sets, registry
    from flywheel.learner.config import TrainConfig
    from flywheel.learner.pipeline import choose_sets, evaluate_registered
    from flywheel.learner.train import TrainRequest, run_training

    cache = root / "init_comparison.json"
    if cache.exists():
        return json.loads(cache.read_text())
    trained = _step(root, 1, "train")
    if not trained or not trained.get("candidate"):
        return {}
    lake = Lake.at_path(root / "lake")
    candidate = trained["candidate"]
    card = registry.read_card(lake, candidate)
    parent = card.lineage.parent_model
    names, gate_sets = choose_sets(reference_sets.standard_set_names(lake))
    test_sets, _ = reference_sets.read_standard_sets(lake, names)
    catalog = tuple(sorted(reference_sets.catalog_skus(lake)))

    def top1(model_id: str) -> dict:
        m = evaluate_registered(lake, model_id, test_sets, gate_sets)["metrics"]
        return {"production_top1": m.get("production_top1"), "manual_top1": m.get("manual_top1")}

    models = {"parent": {"model_id": candidate, "init": card.training.get("init"),
                         "seconds_train": card.training.get("seconds_train"), **top1(candidate)}}
    if parent:
        models["bootstrap"] = {"model_id": parent, **top1(parent)}
    for name, overrides in (variants or INIT_VARIANTS).items():
        cfg = dataclasses.replace(TrainConfig() if epochs is None else TrainConfig(epochs=epochs),
                                  **overrides)
        model_id = registry.new_model_id(cfg.task, card.lineage.dataset_version, cfg.as_dict())
        r = run_training(TrainRequest(lake.uri, None, card.lineage.dataset_version, cfg, model_id,
                                      parent_model_id=parent, catalog=catalog))
        models[name] = {"model_id": model_id, "init": r.card.training["init"]["mode"],
                        "repeated_frames": r.card.training.get("repeated_frames"),
                        "seconds_train": round(r.seconds_train, 1), **top1(model_id)}
    top = {k: v["production_top1"] for k, v in models.items()}
    out = {"dataset_version": card.lineage.dataset_version, "epochs": epochs, "models": models,
           "parent_over_scratch": _ratio(top.get("parent"), top.get("scratch")),
           "balanced_minus_parent_points": (round(100 * (top["parent_balanced"] - top["parent"]), 2)
                                            if top.get("parent_balanced") is not None
                                            and top.get("parent") is not None else None)}
    cache.write_text(json.dumps(out, indent=2))
    return out


def bench(turns: int = 3, carts: int = 4, minutes: float = 0.75, epochs: int | None = None,
          scale: int = 10, work: Path | None = None, report_only: bool = False,
          init_comparison: bool = True, out_file: Path | None = None, max_boxes: int | None = None,
          detector_hints: bool | None = None) -> dict:
    from jobs.turns import WheelSettings

    tmp = tempfile.TemporaryDirectory(prefix="bench-flywheel-") if work is None else None
    root = Path(tmp.name) if tmp else work
    settings = WheelSettings(carts=carts, minutes=minutes, epochs=epochs, max_boxes=max_boxes,
                             detector_hints=detector_hints)
    t0 = time.perf_counter()

    def report() -> dict:
        out = summarize(root, turns, carts, minutes, epochs, scale)
        out["sizes"]["detector_hints"] = detector_hints is not False  # the empty filter's boxes
        cache = root / "x1" / "init_comparison.json"
        out["init_comparison"] = json.loads(cache.read_text()) if cache.exists() else None
        out["seconds_total"] = round(time.perf_counter() - t0, 1)
        with open("/proc/loadavg") as f:
            out["loadavg"] = f.read().split()[:3]
        if out_file:
            out_file.write_text(json.dumps(out, indent=2, default=str))
        return out

    try:
        if not report_only:
            base, big = root / "x1", root / f"x{scale}"
            _turns(base, 0, settings)  # the bootstrap turn, shared by both fleet sizes
            if not big.exists():  # a kept --work resumes both runs where they stopped
                shutil.copytree(base, big, symlinks=True)
            _turns(base, turns, settings)
            report()
            if init_comparison:
                compare_init(base, epochs)
                report()
            _turns(big, 1, dataclasses.replace(settings, carts=carts * scale))
        out = report()
    finally:
        if tmp:
            tmp.cleanup()
    return out


def main(out_dir: Path | str = "var/bench", argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--carts", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=0.75)
    parser.add_argument("--epochs", type=int, default=None,
                        help="classifier epochs per turn (default: the weekly job's)")
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--work", type=Path, help="keep the lakes here (default: a temp dir)")
    parser.add_argument("--report-only", action="store_true",
                        help="write the JSON from the runs under --work as far as they got")
    parser.add_argument("--max-boxes", type=int, default=None,
                        help="Label's max_boxes per turn (default: the stage's, 0): boxes drawn where "
                             "the production detector misses the item")
    parser.add_argument("--no-detector-hints", action="store_true",
                        help="merge without the empty filter's boxes and clean empties (the control)")
    parser.add_argument("--no-init-comparison", action="store_true",
                        help="skip retraining turn 1's dataset from scratch / balanced")
    args = parser.parse_args(argv or [])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return bench(args.turns, args.carts, args.minutes, args.epochs, args.scale, args.work,
                 args.report_only, not args.no_init_comparison, out / "flywheel.json", args.max_boxes,
                 False if args.no_detector_hints else None)


if __name__ == "__main__":
    pos = [a for a in sys.argv[1:2] if not a.startswith("--")]
    main(pos[0] if pos else "var/bench", sys.argv[1 + len(pos):])
