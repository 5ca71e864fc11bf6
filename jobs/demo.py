"""`make demo`: the wheel turning on the embedded default (local lake, LocalRay, SQLite instance).

Turn 0 trains the bootstrap model on the manual collection and releases it. Each later turn: the
simulated fleet (real edge agents; the production model reaches them through the real OTA client)
collects a capture day -> the landing sensor's tick and the day's ingest -> Label (empty filter,
pre-labels, review routing within the human budget) -> the simulated annotator answers the review
tasks -> the corrections sensor and the merge -> the weekly train_and_evaluate job (dataset,
training on Ray, evaluation, blocking gate) -> release -> staged rollout judged on the fleet's
health reports. Every run lands in the persistent instance at $DAGSTER_HOME (`make ui` shows them).

Each finished step is recorded in <out>/progress.json: an interrupted demo resumes on the next
`make demo` without redoing finished work. `--turns` may grow between runs (more turns on top).

    python -m jobs.demo [--turns 3] [--carts 4] [--minutes 0.75] [--epochs N] [--fresh]

`--deployment cluster` turns it on the cluster deployment (S3 lake, LanceDB on S3, training on a
Ray cluster by address, the instance on PostgreSQL): `make demo-cluster` starts those engines on
this machine (jobs/cluster_env.py) and runs one turn.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


class Interrupted(Exception):
    """--stop-after: the demo stops after a step, as a crash would (tests of the resume)."""


def _say(text: str = "") -> None:
    print(text, flush=True)


def _quiet_known_warnings() -> None:
    import warnings

    # Ray starts its processes with fork+exec after LanceDB ran in this process; exec replaces the
    # child at once, so LanceDB's warning about using its runtime in a forked child does not apply.
    warnings.filterwarnings("ignore", message="lancedb fork support is experimental")


class Demo:
    def __init__(self, wheel, progress, stop_after: str | None) -> None:
        self.wheel, self.progress, self.stop_after = wheel, progress, stop_after

    def step(self, turn: int, name: str, fn, *args, **kwargs):
        """Run a step once: a finished step's result comes from the progress file."""
        from jobs.turns import timed

        if self.progress.done(turn, name):
            _say(f"    {name}: done before, skipped")
            return self.progress.result(turn, name)["out"]
        out, seconds = timed(fn, *args, **kwargs)
        self.progress.finish(turn, name, {"out": out, "seconds": seconds})
        _say(f"    {name}: {self._summary(name, out)} ({seconds:.1f} s)")
        if self.stop_after == f"{turn}:{name}":
            raise Interrupted(f"stopped after turn {turn} step {name} (--stop-after)")
        return out

    @staticmethod
    def _summary(name: str, out) -> str:
        if name == "collect":
            return (f"{out['carts']} cart(s) x {out['minutes']:g} min, {out['frames']} frames, "
                    f"{out['uploaded']} clips uploaded, model {out['model_version']}, OTA "
                    f"{sorted(set(out['models'].values()))}")
        if isinstance(out, dict):
            return ", ".join(f"{k}={v}" for k, v in out.items() if k not in ("lines", "run"))
        if isinstance(out, list):
            return "; ".join(", ".join(f"{k}={v}" for k, v in o.items() if k != "run") for o in out) \
                or "nothing new landed"
        return str(out)

    def seconds(self, turn: int, name: str) -> float:
        r = self.progress.result(turn, name)
        return r["seconds"] if r else 0.0

    # -- turns -----------------------------------------------------------------------------------
    def bootstrap(self):
        from flywheel.loop.turns import TurnRecord

        w = self.wheel
        _say("\n=== Turn 0: train the bootstrap model on the manual collection, release it")
        trained = self.step(0, "train", w.train, True)
        rec = TurnRecord(turn=0, candidate_id=trained["candidate"])
        if trained["gate_passed"]:
            rel = self.step(0, "release", w.release, True)
            rec.rollout_stage, rec.shipped = rel["stage"] or "", True
        else:
            rec.note = f"the gate blocked the bootstrap model: {trained['gate']}; nothing ships"
        return rec

    def turn(self, k: int, day: str, carts: int):
        from flywheel.loop.turns import TurnRecord

        w, s = self.wheel, self.wheel.settings
        _say(f"\n=== Turn {k}: capture day {day}")
        rec = TurnRecord(turn=k, day=day)
        if carts > 0:
            self.step(k, "collect", w.collect, k, day, carts, s.minutes)
        else:
            _say("    collect: no carts drove this turn")
        ingested = self.step(k, "ingest", w.ingest, self.wheel.out / "landing_cursor.json")
        mine = [i for i in ingested if i["day"] == day]
        rec.clips = sum(i["clips"] for i in mine)
        rec.frames = sum(i["frames"] for i in mine)
        if not mine or rec.clips == 0:
            rec.note = "no new clips landed this turn: nothing to label, nothing trained"
            _say(f"    {rec.note}")
            return rec
        labelled = self.step(k, "label", w.label, day)
        rec.empties_filtered = labelled["empties"]
        reviewed = self.step(k, "review", w.review, k, day, carts, s.minutes, self._earlier(k))
        rec.human_items, rec.human_frames = reviewed["tasks"], reviewed["frames"]
        rec.human_seconds, rec.human_boxes = reviewed["seconds"], reviewed.get("boxes", 0)
        merged = self.step(k, "merge", w.merge, day)
        rec.auto_labelled = merged["auto"]
        trained = self.step(k, "train", w.train)
        rec.candidate_id = trained["candidate"]
        if not trained["gate_passed"]:
            rec.note = f"the gate blocked {trained['candidate']}: {trained['gate']}; nothing ships"
            _say(f"    {rec.note}")
            return rec
        rel = self.step(k, "release", w.release, False)
        rec.shipped = True
        rec.rollout_stage = rel["stage"] or ""
        shift, waiting = 0, ""
        while not rec.rollout_stage.startswith(("full", "halted", "rolled_back")):
            if shift >= s.max_health_shifts:
                rec.note = f"rollout held at {rec.rollout_stage} after {shift} health shift(s)" + (
                    f", waiting for: {waiting}" if waiting and waiting != "none" else "")
                break
            shift += 1
            self.step(k, f"health_shift_{shift}", w.collect, k, self._next_day(day, shift), carts,
                      s.health_minutes, health=True, shift=shift)
            judged = self.step(k, f"rollout_{shift}", w.judge_rollout)
            waiting = judged.get("waiting_for", "")
            if judged["action"] == "halt":  # the channel is the old release at full again: say so
                rec.rollout_stage = f"rolled_back at {rec.rollout_stage}"
                rec.note = f"rollout halted and rolled back: {judged['reasons']}"
            else:
                rec.rollout_stage = judged["stage"] or rec.rollout_stage
        return rec

    def _earlier(self, k: int) -> dict[str, tuple[int, int, float]]:
        """Capture day -> (turn, carts, minutes) of the turns before k that collected."""
        if "start_day" not in self.progress.state:
            return {}
        start = date.fromisoformat(self.progress.state["start_day"])
        out = {}
        for j in range(1, k):
            got = self.progress.result(j, "collect")
            if got:
                out[(start + timedelta(days=7 * (j - 1))).isoformat()] = (j, got["out"]["carts"],
                                                                          got["out"]["minutes"])
        return out

    @staticmethod
    def _next_day(day: str, n: int) -> str:
        return (date.fromisoformat(day) + timedelta(days=n)).isoformat()

    def finish(self, rec, k: int) -> None:
        """Production figures after the turn, merged-label accuracy, the record, the UI's asset."""
        from flywheel.loop.turns import (
            merged_accuracy,
            production_figures,
            stage_seconds,
            turn_time,
            write_turn,
        )

        w = self.wheel
        rec.model_id, rec.production_top1, rec.production_pooled, rec.manual_top1 = \
            production_figures(w.lake)
        if rec.day and rec.auto_labelled + rec.human_frames:
            from flywheel.label.merge import read_merged

            t = read_merged(w.lake, rec.day)
            ids = t.column("frame_id").to_pylist() if t is not None else []
            collect = self.progress.result(k, "collect")["out"]
            truth = w.truth(k, rec.day, collect["carts"], collect["minutes"], ids)
            rec.merged_accuracy = merged_accuracy(w.lake, rec.day, truth)
        steps = self.progress.state["turns"].get(str(k), {})
        rec.seconds = {n: v["seconds"] for n, v in steps.items() if isinstance(v, dict) and "seconds" in v}
        trained = self.progress.result(k, "train")
        rec.stage_seconds = stage_seconds(rec.seconds, trained["out"].get("steps") if trained else None)
        if k > 0:
            rec.turn_time_s, rec.turn_time_until = turn_time(rec.stage_seconds, rec.rollout_stage,
                                                             rec.shipped)
        write_turn(w.lake, rec)
        w.refresh_figures()
        self.progress.finish(k, "record", dataclasses.asdict(rec))


CLUSTER_SETTINGS = ("FLYWHEEL_LAKE_URI", "AWS_ENDPOINT_URL", "FLYWHEEL_RAY_ADDRESS", "DAGSTER_HOME",
                    "DAGSTER_PG_HOST")


def run_demo(turns: int, settings, out: Path, fresh: bool, stop_after: str | None,
             deployment: str = "local") -> int:
    _quiet_known_warnings()
    if deployment == "cluster":
        missing = [k for k in CLUSTER_SETTINGS if not os.environ.get(k)]
        if missing:
            _say(f"--deployment cluster needs {missing} set (the engines' endpoints): run "
                 "`make demo-cluster`, or `python -m jobs.cluster_env python -m jobs.demo "
                 "--deployment cluster`")
            return 2
    import dagster as dg

    from flywheel.loop.progress import Progress
    from flywheel.loop.turns import flywheel_png, read_turns, seconds_text, table_text
    from jobs.instance import write_instance_yaml
    from jobs.turns import Wheel

    os.environ.setdefault("DAGSTER_HOME", str(REPO_ROOT / "var" / "dagster_home"))
    write_instance_yaml(os.environ["DAGSTER_HOME"])
    if fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    # carts may change between runs (--carts 0: the fleet stays home); unset knobs are not pinned
    pinned = {k: v for k, v in dataclasses.asdict(settings).items() if k != "carts" and v is not None}
    progress = Progress(out / "progress.json", pinned)
    if "start_day" not in progress.state:
        progress.state["start_day"] = datetime.now(UTC).date().isoformat()
    start = date.fromisoformat(progress.state["start_day"])
    instance = dg.DagsterInstance.get()
    wheel = Wheel(instance, settings, out, deployment)
    demo = Demo(wheel, progress, stop_after)
    head = "deployment: cluster (Ray " + os.environ["FLYWHEEL_RAY_ADDRESS"] + ")\n" \
        if deployment == "cluster" else ""
    _say(f"{head}lake: {wheel.lake.uri}\nDagster instance: {os.environ['DAGSTER_HOME']}\n"
         f"progress: {progress.path}" + (" (resuming)" if progress.resumed else ""))
    t0 = time.perf_counter()
    try:
        for k in range(turns + 1):
            if k in progress.finished_turns():
                _say(f"\n=== Turn {k}: done before, skipped")
                continue
            if k == 0:
                rec = demo.bootstrap()
            else:  # a turn is a week: one capture day each, a week apart
                rec = demo.turn(k, (start + timedelta(days=7 * (k - 1))).isoformat(), settings.carts)
            demo.finish(rec, k)
    except Interrupted as e:
        _say(f"\n{e}; run again to resume")
        return 3
    records = [r for r in read_turns(wheel.lake) if r.turn <= turns]
    png = out / "flywheel.png"
    png.write_bytes(flywheel_png(records))
    _say("\n=== The wheel, turn by turn (top-1 in %, production model after the turn)")
    _say(table_text(records))
    _say("\n=== Where each turn's time goes (wall s per stage; cloud turn s: last clip landed to the "
         "rollout decision)")
    _say(seconds_text(records))
    _say(f"\nplot: {png}\n({time.perf_counter() - t0:.0f} s this run)\n"
         "See the runs, lineage and metadata: make ui  (http://127.0.0.1:3000)")
    return 0


def main(argv: list[str] | None = None) -> int:
    from jobs.turns import WheelSettings

    d = WheelSettings()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=3, help="fleet turns after the bootstrap turn 0")
    parser.add_argument("--carts", type=int, default=d.carts, help="0: the fleet stays home")
    parser.add_argument("--minutes", type=float, default=d.minutes, help="simulated minutes per cart")
    parser.add_argument("--epochs", type=int, default=d.epochs,
                        help="crop-classifier epochs of a fleet turn (default and 0: the weekly job's)")
    parser.add_argument("--bootstrap-epochs", type=int, default=d.bootstrap_epochs,
                        help="crop-classifier epochs of the bootstrap turn 0 (default: the weekly job's)")
    parser.add_argument("--det-epochs", type=int, default=d.det_epochs,
                        help="the bootstrap's item detector epochs (default: the job's)")
    parser.add_argument("--seed", type=int, default=d.seed, help="fleet seed base")
    parser.add_argument("--health-minutes", type=float, default=d.health_minutes,
                        help="simulated minutes per rollout health shift")
    parser.add_argument("--ocr", action="store_true", help="run the OCR pre-labeler (~1 s a frame)")
    parser.add_argument("--max-boxes", type=int, default=d.max_boxes,
                        help="review tasks a turn that also ask for a box where the production "
                             "detector misses the item (default: the Label stage's, 0)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "var" / "demo",
                        help="progress, fleet spools, sensor cursor, flywheel.png")
    parser.add_argument("--deployment", choices=("local", "cluster"), default="local",
                        help="cluster: S3 lake, Ray cluster, Postgres instance (make demo-cluster)")
    parser.add_argument("--fresh", action="store_true", help="forget the progress; start over")
    parser.add_argument("--stop-after", help="TURN:STEP, stop there as a crash would (tests)")
    args = parser.parse_args(argv)
    settings = WheelSettings(carts=args.carts, minutes=args.minutes, epochs=args.epochs or None,
                             bootstrap_epochs=args.bootstrap_epochs,
                             det_epochs=args.det_epochs, seed=args.seed, ocr=args.ocr,
                             health_minutes=args.health_minutes, max_boxes=args.max_boxes)
    return run_demo(args.turns, settings, args.out, args.fresh, args.stop_after, args.deployment)


if __name__ == "__main__":
    sys.exit(main())
