"""One Learner turn trained again with other settings, on a kept lake's own dataset and parent.

A bench_flywheel turn costs ~10 minutes, most of it the fleet, ingest and labelling that a
training setting does not change. Here the turn's training (`run_training`, as the weekly job runs
it) is repeated on a dataset version the bench already built, from the same parent, with
TrainConfig / RoiConfig overrides, and evaluated on the frozen sets (`evaluate_candidate`): ~4
minutes a variant on 2 cores. Training is seeded, so the defaults reproduce the bench's candidate
to the frame (stop 31: production 0.2917, item frames 0.200, empties 0.811 both ways); a variant
differs by its settings alone, on one dataset (other weeks differ by a few points).

    python -m benchmarks.turn_variant --lake <work>/x1/lake --dataset ds-... --parent cls-... \\
        [--tag det4] [--set roi.det_refresh_epochs=4] [--set epochs=15] [--out DIR]

The lake, dataset and parent are in bench_flywheel's `--work` folder (`x1/lake`, the turn's
`candidate_model` card: lineage.dataset_version and parent_model). Prints and writes one JSON.
Mix the new model's classifier and detector with the parent's with `bench_learner_roi --steps
eval` (README, "Store light for the crop classifier").
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path


def parse_overrides(items: list[str]) -> tuple[dict, dict]:
    """`FIELD=VALUE` items -> (TrainConfig fields, RoiConfig fields: the `roi.` ones); values as
    `bench_learner oracle --set` reads them (JSON where they parse, else strings), arrays as tuples."""
    from benchmarks.bench_learner import parse_value

    top: dict = {}
    roi: dict = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected FIELD=VALUE")
        value = parse_value(text)
        if isinstance(value, list):
            value = tuple(value)  # the configs' pairs are tuples (frozen, hashable)
        (roi if key.startswith("roi.") else top)[key.removeprefix("roi.")] = value
    return top, roi


def run(lake_dir: Path, dataset: str, parent: str | None, tag: str, overrides: list[str]) -> dict:
    """The turn trained and evaluated as `bench_learner oracle` does one (`train_turn`,
    `turn_summary`)."""
    from benchmarks.bench_learner import train_turn, turn_summary
    from edge_agent.lake import Lake
    from flywheel.learner.config import TrainConfig
    from flywheel.learner.datasets import load_dataset_version
    from flywheel.learner.pipeline import evaluate_candidate

    top, roi = parse_overrides(overrides)
    cfg = TrainConfig.for_task("classify")
    cfg = replace(cfg, **top, **({"roi": replace(cfg.roi, **roi)} if roi else {}))
    lake = Lake.at_path(lake_dir)
    turn = train_turn(lake, load_dataset_version(lake, dataset), cfg, parent)
    return {"tag": tag, "overrides": overrides, "dataset": dataset, "parent": parent,
            **turn_summary(*turn, evaluate_candidate(lake, turn[0].model_id))}


def main(argv: list[str]) -> dict:
    p = argparse.ArgumentParser(prog="turn_variant")
    p.add_argument("--lake", type=Path, required=True, help="a kept lake (bench_flywheel --work .../x1/lake)")
    p.add_argument("--dataset", required=True, help="the turn's dataset version (ds-...)")
    p.add_argument("--parent", default=None, help="the turn's parent model (production before it)")
    p.add_argument("--tag", default="", help="names the result file")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="TrainConfig override; roi.FIELD=VALUE for RoiConfig (repeatable)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "var" / "bench")
    a = p.parse_args(argv)
    parse_overrides(a.set)  # a malformed --set fails before anything trains
    result = run(a.lake, a.dataset, a.parent, a.tag, a.set)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / f"turn_variant-{a.tag or 'defaults'}.json").write_text(
        json.dumps(result, indent=1, default=str) + "\n")
    return result


if __name__ == "__main__":  # the detector trains in a spawned process: this guard is required
    print(json.dumps(main(sys.argv[1:]), indent=1, default=str))
