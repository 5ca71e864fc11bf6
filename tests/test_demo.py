"""`make demo`'s program, run as a user runs it: a subprocess on a fresh lake and Dagster instance,
at a tiny size (turn 0 + one fleet turn, 1 epoch). It is interrupted once and resumed, then run
again with the fleet at home (a turn with no new clips); the per-turn table is checked against the
lake and the instance. tests/test_demo_turns.py covers the turn logic's branches (a blocked gate)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--carts", "2", "--minutes", "0.3", "--epochs", "1", "--bootstrap-epochs", "1", "--det-epochs", "2",
        "--health-minutes", "0.3"]


def _demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster_home"),
           "FLYWHEEL_LAKE_ROOT": str(tmp_path / "lake"), "FLYWHEEL_DEPLOYMENT": "local"}
    return subprocess.run([sys.executable, "-m", "jobs.demo", *TINY, "--out", str(tmp_path / "demo"),
                           *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)


def _meta(instance, key: str, partition: str | None = None) -> dict:
    import dagster as dg

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key),
                              asset_partitions=[partition] if partition else None), limit=1).records
    assert records, f"no materialization of {key} {partition or ''}"
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def check_turn(instance, lake, boot, turn, text: str, max_boxes: int = 0) -> None:
    """A fleet turn's record (and the printed table) against the lake and the Dagster instance:
    one ingest and two trainings (turn 0, turn 1) in the instance, the record's figures from the
    materializations' metadata, the gate's outcome reflected in what shipped."""
    from flywheel.learner import registry

    jobs = [r.job_name for r in instance.get_runs()]
    # nothing finished was redone: one ingest, one labelling of the day, one training per turn
    assert jobs.count("depot_ingest_job") == 1
    assert jobs.count("train_and_evaluate") == 2
    assert jobs.count("release_job") == 1 + turn.shipped
    day = turn.day
    frames, cands = _meta(instance, "depot_frames", day), _meta(instance, "label_candidates", day)
    merged = _meta(instance, "merged_labels", day)
    assert turn.clips == frames["clips_ingested"] > 0 and turn.frames == frames["frames_written"]
    assert turn.empties_filtered == cands["dropped"]
    assert turn.auto_labelled == merged["auto"] and merged["human"] <= turn.human_frames
    assert turn.human_items > 0 and turn.human_seconds > 0
    assert turn.merged_accuracy is not None and 0 < turn.merged_accuracy <= 1
    # the bootstrap's lab-trained detector misses store items: with --max-boxes Label asked for boxes
    # there, the simulated annotator drew them (billed), and they reached the merged labels
    from flywheel.label.merge import read_merged

    requested = _meta(instance, "review_queue", day)["boxes_requested"]
    boxes = [b for b in read_merged(lake, day).column("box").to_pylist() if b]
    if max_boxes:
        assert max_boxes >= requested >= turn.human_boxes > 0
    else:  # off by default
        assert requested == turn.human_boxes == 0
    assert len(boxes) == turn.human_boxes
    model = _meta(instance, "candidate_model")
    assert turn.candidate_id == model["model_id"]
    if boot.shipped:  # the default two-stage model: turn 1 starts from the bootstrap's detector
        det = registry.read_card(lake, turn.candidate_id).training["detector"]["init"]
        assert det["mode"] in ("reused", "fine-tuned") and det["parent"] == boot.model_id, det
    assert turn.model_id == registry.production_model_id(lake)
    if turn.shipped:  # the gate passed: released, rolled out on the fleet's health reports
        assert turn.rollout_stage and _meta(instance, "release")["model_id"] == turn.candidate_id
    else:  # the gate blocked: nothing shipped, and the demo said why
        assert "the gate blocked" in turn.note and turn.note in text
        assert turn.model_id == boot.model_id
    ev = registry.read_evaluation(lake, turn.model_id).candidate
    assert turn.production_top1 == {n: round(s["top1"], 4) for n, s in ev.sets.items()
                                    if n.startswith("store_")}
    # where the turn's time went: every stage that ran has its seconds; the cloud turn time runs
    # to the rollout decision and says which one
    ran = ["collect", "ingest", "label", "review", "merge", "dataset", "train", "gate"]
    assert all(turn.stage_seconds[k] > 0 for k in ran), turn.stage_seconds
    assert turn.turn_time_s and turn.turn_time_s < sum(turn.seconds.values())
    if turn.shipped:
        assert turn.stage_seconds["release"] > 0
        assert turn.turn_time_until in ("full_rollout", "rollout_held", "rollout_halted")
        assert (turn.turn_time_until == "full_rollout") == turn.rollout_stage.startswith("full")
    else:
        assert turn.turn_time_until == "gate_blocked" and "release" not in turn.stage_seconds
    ui = _meta(instance, "flywheel_turns")
    assert ui["turns"] == 2 and "| turn |" in ui["per_turn"] and "data:image/png" in ui["flywheel"]
    assert "| turn | collect |" in ui["seconds_per_stage"]
    assert ui["records"][-1]["turn_time_until"] == turn.turn_time_until

    row = next(line.split() for line in text.splitlines() if line.split()[:2] == ["1", day])
    assert str(turn.clips) in row and str(turn.frames) in row


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.timeout(3600)  # two trainings and a fleet turn: minutes when idle, far more under load
def test_demo_turns_the_wheel_resumes_and_reports_each_turn(tmp_path: Path) -> None:
    import dagster as dg

    from edge_agent.lake import Lake
    from flywheel.loop.turns import read_turns

    # interrupted after the simulated annotator answered turn 1's review tasks
    # boxes where the bootstrap's detector misses the item: off by default, on here (Label)
    first = _demo(tmp_path, "--turns", "1", "--max-boxes", "10", "--stop-after", "1:review")
    assert first.returncode == 3, first.stdout[-3000:] + first.stderr[-3000:]
    assert "stopped after turn 1 step review" in first.stdout
    resumed = _demo(tmp_path, "--turns", "1", "--max-boxes", "10")
    text = resumed.stdout
    assert resumed.returncode == 0, text[-3000:] + resumed.stderr[-3000:]
    assert "(resuming)" in text and "Turn 0: done before, skipped" in text
    for step in ("collect", "ingest", "label", "review"):
        assert f"{step}: done before, skipped" in text

    lake = Lake.at_path(tmp_path / "lake")
    boot, turn = read_turns(lake)
    assert boot.turn == 0 and boot.shipped and boot.rollout_stage == "full 100%"
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        check_turn(instance, lake, boot, turn, text, max_boxes=10)
    assert (tmp_path / "demo" / "flywheel.png").stat().st_size > 5_000

    # the fleet stays home: a turn with no new clips trains nothing
    home = _demo(tmp_path, "--turns", "2", "--carts", "0", "--max-boxes", "10")  # same settings
    assert home.returncode == 0, home.stdout[-3000:] + home.stderr[-3000:]
    assert "no new clips landed this turn" in home.stdout
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        assert [r.job_name for r in instance.get_runs()].count("train_and_evaluate") == 2
    assert read_turns(lake)[-1].note.startswith("no new clips")
