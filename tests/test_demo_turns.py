"""The demo's turn logic with a scripted wheel (unit tests; tests/test_demo.py runs the real one):
a blocked gate ships nothing and says why, a turn without new clips trains nothing, an interrupted
demo resumes without redoing finished steps, a rollout that never gets enough data is reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.loop.progress import Progress
from jobs.demo import Demo, Interrupted
from jobs.turns import WheelSettings


class ScriptedWheel:
    def __init__(self, out: Path, clips: int = 5, gate: bool = True, rollout=("advance",)) -> None:
        self.settings, self.out = WheelSettings(max_health_shifts=2), out
        self.clips, self.gate, self.rollout = clips, gate, list(rollout)
        self.calls: list[str] = []

    def collect(self, turn, day, carts, minutes, health=False, shift=0):
        self.calls.append("health" if health else "collect")
        return {"carts": carts, "minutes": minutes, "frames": 100, "uploaded": self.clips,
                "model_version": "over the air", "models": {"cart-A-000": "m1"}}

    def ingest(self, cursor_file):
        self.calls.append("ingest")
        return [{"day": "2026-11-02", "clips": self.clips, "frames": 40 * self.clips}] if self.clips else []

    def label(self, day):
        self.calls.append("label")
        return {"frames_in": 200, "empties": 50, "tasks": 7, "planned_human_s": 30.0, "auto_routed": 120}

    def review(self, turn, day, carts, minutes, earlier=None):
        self.calls.append("review")
        return {"tasks": 7, "frames": 20, "seconds": 31.5, "wrong_answers": 0, "batch": "b"}

    def merge(self, day):
        self.calls.append("merge")
        return {"labels": 150, "auto": 120, "human": 20, "pending": 10}

    def train(self):
        self.calls.append("train")
        return {"candidate": "cls-2", "dataset": "ds", "gate_passed": self.gate,
                "gate": "passed" if self.gate else "BLOCKED: production_top1 +0.001 < +0.005"}

    def release(self, first):
        self.calls.append("release")
        return {"release_id": "r2", "stage": "canary 50%", "production_moved": False}

    def judge_rollout(self):
        self.calls.append("judge")
        action = self.rollout.pop(0) if self.rollout else "hold"
        # a halt rolls back: the channel is the previous release at full 100 % again
        return {"action": action, "stage": "canary 50%" if action == "hold" else "full 100%",
                "reasons": "low_confidence: canary worse" if action == "halt" else "none",
                "waiting_for": "too few barcode checks" if action == "hold" else "none"}


def _demo(tmp_path: Path, wheel: ScriptedWheel, stop_after: str | None = None) -> Demo:
    return Demo(wheel, Progress(tmp_path / "progress.json", {"seed": 0}), stop_after)


def test_a_turn_runs_every_stage_and_reaches_full_rollout(tmp_path: Path) -> None:
    wheel = ScriptedWheel(tmp_path)
    rec = _demo(tmp_path, wheel).turn(1, "2026-11-02", carts=2)
    assert wheel.calls == ["collect", "ingest", "label", "review", "merge", "train", "release",
                           "health", "judge"]
    assert (rec.clips, rec.frames, rec.empties_filtered, rec.auto_labelled) == (5, 200, 50, 120)
    assert (rec.human_items, rec.human_seconds, rec.rollout_stage) == (7, 31.5, "full 100%")
    assert rec.shipped and not rec.note


def test_a_blocked_gate_ships_nothing_and_says_why(tmp_path: Path, capsys) -> None:
    wheel = ScriptedWheel(tmp_path, gate=False)
    rec = _demo(tmp_path, wheel).turn(1, "2026-11-02", carts=2)
    assert "release" not in wheel.calls and "health" not in wheel.calls
    assert not rec.shipped and rec.rollout_stage == ""
    assert "the gate blocked cls-2" in rec.note and "+0.001 < +0.005" in rec.note
    assert "nothing ships" in capsys.readouterr().out


def test_a_turn_without_new_clips_trains_nothing(tmp_path: Path, capsys) -> None:
    wheel = ScriptedWheel(tmp_path, clips=0)
    rec = _demo(tmp_path, wheel).turn(1, "2026-11-02", carts=2)
    assert wheel.calls == ["collect", "ingest"]
    assert rec.clips == 0 and "nothing trained" in rec.note
    assert "no new clips" in capsys.readouterr().out


def test_a_rollout_without_enough_health_data_is_reported_held(tmp_path: Path) -> None:
    wheel = ScriptedWheel(tmp_path, rollout=("hold", "hold", "hold"))
    rec = _demo(tmp_path, wheel).turn(1, "2026-11-02", carts=2)
    assert wheel.calls.count("health") == 2  # max_health_shifts
    assert rec.rollout_stage == "canary 50%" and "held at canary 50%" in rec.note
    assert rec.note.endswith("waiting for: too few barcode checks")  # what the hold lacked


def test_a_halted_rollout_is_reported_rolled_back_not_full(tmp_path: Path) -> None:
    """bench_flywheel's turn 2 halted at canary 50 % and was reported "full 100%" / full_rollout:
    the stage the rollback left the channel in (the old release at full)."""
    from flywheel.loop.turns import turn_time

    wheel = ScriptedWheel(tmp_path, rollout=("hold", "halt"))
    rec = _demo(tmp_path, wheel).turn(1, "2026-11-02", carts=2)
    assert wheel.calls.count("judge") == 2
    assert rec.rollout_stage == "rolled_back at canary 50%"
    assert rec.note == "rollout halted and rolled back: low_confidence: canary worse"
    assert turn_time({"gate": 1.0}, rec.rollout_stage, rec.shipped)[1] == "rollout_halted"


def test_an_interrupted_turn_resumes_without_redoing_finished_steps(tmp_path: Path, capsys) -> None:
    first = ScriptedWheel(tmp_path)
    with pytest.raises(Interrupted):
        _demo(tmp_path, first, stop_after="1:merge").turn(1, "2026-11-02", carts=2)
    assert first.calls == ["collect", "ingest", "label", "review", "merge"]
    again = ScriptedWheel(tmp_path)
    rec = _demo(tmp_path, again).turn(1, "2026-11-02", carts=2)
    assert again.calls == ["train", "release", "health", "judge"]  # nothing before train re-ran
    assert (rec.clips, rec.human_seconds, rec.auto_labelled) == (5, 31.5, 120)  # from the progress file
    assert capsys.readouterr().out.count("done before, skipped") == 5


def test_changed_settings_start_over(tmp_path: Path) -> None:
    p = Progress(tmp_path / "progress.json", {"seed": 0})
    p.finish(1, "collect", {"out": 1, "seconds": 1.0})
    assert Progress(tmp_path / "progress.json", {"seed": 0}).done(1, "collect")
    assert not Progress(tmp_path / "progress.json", {"seed": 1}).done(1, "collect")


def test_the_cluster_deployment_without_its_engines_says_how_to_start_them(monkeypatch, capsys,
                                                                           tmp_path: Path) -> None:
    from jobs.demo import CLUSTER_SETTINGS, main

    for k in CLUSTER_SETTINGS:
        monkeypatch.delenv(k, raising=False)
    assert main(["--deployment", "cluster", "--out", str(tmp_path / "demo")]) == 2
    out = capsys.readouterr().out
    assert "make demo-cluster" in out and "FLYWHEEL_LAKE_URI" in out
    assert not (tmp_path / "demo").exists()  # nothing started, nothing written
