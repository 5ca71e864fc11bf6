"""Where a turn's time goes: wall seconds per stage from the demo's steps and the training run's
steps, and the cloud turn time up to the turn's rollout decision (which one is recorded)."""

from __future__ import annotations

from flywheel.loop.turns import TurnRecord, seconds_markdown, seconds_text, stage_seconds, turn_time

STEPS = {"collect": 40.0, "ingest": 12.0, "label": 20.0, "review": 3.0, "merge": 4.0, "train": 100.0,
         "release": 5.0, "health_shift_1": 30.0, "rollout_1": 6.0, "health_shift_2": 31.0, "rollout_2": 7.0}
TRAIN_STEPS = {"learner_sources": 2.0, "dataset_version": 8.0, "candidate_model": 70.0,
               "candidate_evaluation": 9.0, "candidate_evaluation_release_gate": 1.0}


def test_the_training_run_splits_into_dataset_train_and_gate_and_shifts_add_up() -> None:
    s = stage_seconds(STEPS, TRAIN_STEPS)
    assert s == {"collect": 40.0, "ingest": 12.0, "label": 20.0, "review": 3.0, "merge": 4.0,
                 "dataset": 10.0, "train": 80.0, "gate": 10.0, "release": 5.0, "health": 61.0,
                 "rollout": 13.0}
    # the run's own overhead (start, Ray) is training's: the three add up to the step's wall time
    assert s["dataset"] + s["train"] + s["gate"] == STEPS["train"]


def test_the_cloud_turn_time_ends_at_the_rollout_decision_and_says_which() -> None:
    s = stage_seconds(STEPS, TRAIN_STEPS)
    cloud = 12 + 20 + 4 + 10 + 80 + 10 + 5 + 13  # not the fleet's collect/health, not the annotator
    assert turn_time(s, "full 100%", shipped=True) == (cloud, "full_rollout")
    assert turn_time(s, "canary 50%", shipped=True) == (cloud, "rollout_held")
    assert turn_time(s, "rolled_back", shipped=True) == (cloud, "rollout_halted")
    blocked = stage_seconds({k: v for k, v in STEPS.items() if k in ("collect", "ingest", "label",
                                                                   "review", "merge", "train")},
                            TRAIN_STEPS)
    assert turn_time(blocked, "", shipped=False) == (12 + 20 + 4 + 100, "gate_blocked")
    assert turn_time(stage_seconds({"collect": 5.0, "ingest": 1.0}), "", shipped=False) == (None, "")


def test_the_stage_table_prints_every_stage_per_turn() -> None:
    rec = TurnRecord(turn=1, day="2026-11-02", stage_seconds=stage_seconds(STEPS, TRAIN_STEPS),
                     turn_time_s=154.0, turn_time_until="full_rollout")
    text = seconds_text([TurnRecord(turn=0), rec])
    head, boot, row = text.splitlines()
    assert head.split()[:4] == ["turn", "collect", "ingest", "label"] and head.split()[-1] == "until"
    assert row.split() == ["1", "40", "12", "20", "3", "4", "10", "80", "10", "5", "61", "13", "154",
                           "full_rollout"]
    assert boot.split()[0] == "0" and "| 1 | 40 | 12 |" in seconds_markdown([rec])
    assert TurnRecord.from_json(rec.to_json()) == rec
