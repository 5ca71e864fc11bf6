"""The steps of one turn of the loop, as the demo and the flywheel benchmark drive them: each step
runs the stage's real Dagster job (in process, logged to the persistent instance) or a real sensor
tick, and returns plain numbers. `Wheel` keeps the definitions, the instance and the lake."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

# Runs log to the instance (the UI shows every event); the terminal gets the summary.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
# A health shift runs the fleet to judge a rollout: the carts shop and report, capture stays off
# (a rule that never fires), so each turn's collection is exactly its capture day.
HEALTH_SHIFT_RULES = [{"name": "off", "when": "weight_change(1000000)"}]
DEMO_STAGES = ["canary:50", "full:100"]


@dataclass
class WheelSettings:
    carts: int = 4
    minutes: float = 0.75  # simulated minutes per cart per collection
    # crop-classifier epochs of a fleet turn (a fine-tune from the production model) and of the
    # bootstrap turn 0 (from scratch); None: the weekly job's (TrainConfig.finetune_epochs warm,
    # TrainConfig.epochs from scratch). The classifier trains beside the detector's refresh, the
    # longer of the two, so the weekly job's 30 cost no wall time: 2026-12-04, 3 turns at 30 epochs
    # 0.230 -> 0.388 -> 0.445 -> 0.483, all shipped, train 107 / 129 / 147 s; at 15 epochs turn 3
    # was blocked (train 114 / 120 / 145 s); at 8 turns 1 and 2 lost 0.10 on the manual set and
    # were blocked. At 3 epochs the bootstrap's manual top-1 was 0.155 and no turn passed the gate
    epochs: int | None = None
    bootstrap_epochs: int | None = None
    # the two-stage model's detector, trained from scratch in the bootstrap turn only (later turns
    # reuse or fine-tune the parent's: RoiConfig.det_refresh_epochs); None: the job's default
    det_epochs: int | None = None
    seed: int = 0  # fleet seed base; every turn's shoppers are new (seed * 1000 + turn)
    world_seed: int = 0  # the simulator world the learner's catalog and frozen sets come from
    ocr: bool = False  # the RapidOCR pre-labeler (~1 s a frame here): off for the demo's pace
    review_budget_s: float = 900.0  # human seconds per turn the routing may plan
    # review_queue's near-duplicate grouping (cosine distance; None: the Label stage's default)
    near_duplicate_distance: float | None = None
    # review tasks that also ask for a box where the production detector misses the item (Label's
    # max_boxes); None: the Label stage's default (0, off: README, "a box where the device sees nothing")
    max_boxes: int | None = None
    # merged_labels' detector_hints (the empty filter's boxes and clean empties); None: its default (on)
    detector_hints: bool | None = None
    health_minutes: float = 0.5  # simulated minutes per rollout health shift
    max_health_shifts: int = 3
    min_frames: int = 200  # rollout gate: frames per cohort before crashes are judged
    min_barcode_checks: int = 10  # rollout gate: barcode checks per cohort before agreement
    stages: list[str] = field(default_factory=lambda: list(DEMO_STAGES))


class Wheel:
    def __init__(self, instance: dg.DagsterInstance, settings: WheelSettings, out: Path,
                 deployment: str = "local") -> None:
        from flywheel.definitions import build_definitions
        from resources.labelers import LabelersResource

        self.instance, self.settings, self.out = instance, settings, out
        # cluster: the S3 lake, LanceDB on S3, training on the Ray cluster by address; the runs
        # execute in this process (execute_in_process), logged to the deployment's instance
        self.defs = build_definitions(deployment)
        # the steps call the lake and index resources directly (sensor ticks): with their EnvVar
        # settings (cluster) resolved, as a run would resolve them
        self.lake_resource = self.defs.resources["lake"].process_config_and_initialize()
        self.index_resource = self.defs.resources["index"].process_config_and_initialize()
        self.lake = self.lake_resource.lake()
        self.labelers = LabelersResource(ocr=settings.ocr, work_dir=str(out / "labelers"))

    # -- Dagster plumbing ------------------------------------------------------------------------
    def run_job(self, name: str, partition_key: str | None = None, run_config: dict | None = None,
                tags: dict | None = None):
        job = self.defs.resolve_job_def(name)
        return job.execute_in_process(instance=self.instance, partition_key=partition_key,
                                      run_config={**QUIET, **(run_config or {})}, tags=tags,
                                      raise_on_error=False)

    def materialize(self, keys: list[str], partition_key: str | None = None,
                    run_config: dict | None = None):
        """Assets with the demo's own labelers resource (OCR switch) and the shared ones."""
        resources = {**self.defs.resources, "labelers": self.labelers}
        assets = [a for a in self.defs.assets if isinstance(a, dg.AssetsDefinition)]
        return dg.materialize(assets, selection=keys, instance=self.instance, resources=resources,
                              partition_key=partition_key, run_config={**QUIET, **(run_config or {})},
                              raise_on_error=False)

    @staticmethod
    def meta(result, key: str) -> dict[str, Any]:
        for event in result.get_asset_materialization_events():
            mat = event.materialization
            if mat.asset_key.to_user_string() == key:
                return {k: v.value for k, v in mat.metadata.items()}
        return {}

    # -- steps -----------------------------------------------------------------------------------
    def collect(self, turn: int, day: str, carts: int, minutes: float, health: bool = False,
                shift: int = 0) -> dict:
        from edge_agent.triggers.rules import build_rule_set
        from flywheel.fleet.runner import simulate_fleet

        s = self.settings
        rules = build_rule_set("health-shift-1", HEALTH_SHIFT_RULES) if health else None
        summary = simulate_fleet(
            self.lake, carts=carts, minutes=minutes, seed=self.fleet_seed(turn, shift), day=day,
            world_seed=s.world_seed, rules=rules, progress=False,
            work_dir=self.out / "fleet" / f"turn-{turn}-{'health' if health else 'collect'}-{shift}")
        return {**summary.as_dict(), "lines": summary.lines()}

    def fleet_seed(self, turn: int, shift: int = 0) -> int:
        return self.settings.seed * 1000 + turn * 10 + shift

    def ingest(self, cursor_file: Path) -> list[dict]:
        """The landing sensor's tick, then one ingest run per capture day it asks for."""
        from jobs.depot import evaluate_landing

        context = dg.build_sensor_context(
            instance=self.instance, cursor=cursor_file.read_text() if cursor_file.exists() else None,
            resources={"lake": self.lake_resource})
        tick = evaluate_landing(context, self.lake_resource)
        for request in tick.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        out = []
        for request in tick.run_requests or []:
            result = self.run_job("depot_ingest_job", request.partition_key, tags=request.tags)
            if not result.success:
                raise RuntimeError(f"ingest of {request.partition_key} failed (run {result.run_id})")
            m = self.meta(result, "depot_frames")
            out.append({"day": request.partition_key, "run": result.run_id,
                        "clips": m.get("clips_ingested", 0), "frames": m.get("frames_written", 0)})
        if tick.cursor:
            cursor_file.write_text(tick.cursor)
        return out

    def label(self, day: str) -> dict:
        review = {"budget_s": self.settings.review_budget_s}
        if self.settings.near_duplicate_distance is not None:
            review["near_duplicate_distance"] = self.settings.near_duplicate_distance
        if self.settings.max_boxes is not None:
            review["max_boxes"] = self.settings.max_boxes
        result = self.materialize(["label_candidates", "prelabels", "review_queue"], day,
                                  {"ops": {"review_queue": {"config": review}}})
        if not result.success:
            raise RuntimeError(f"labelling {day} failed (run {result.run_id})")
        c, q = self.meta(result, "label_candidates"), self.meta(result, "review_queue")
        return {"run": result.run_id, "frames_in": c.get("frames_in", 0), "empties": c.get("dropped", 0),
                "tasks": q.get("tasks", 0), "planned_human_s": q.get("planned_human_s", 0.0),
                "auto_routed": q.get("auto_accepted", 0)}

    def truth(self, turn: int, day: str, carts: int, minutes: float, frame_ids: list[str]):
        """frame id -> true SKU (None: no item; UNKNOWN: not a frame of that turn's fleet)."""
        from flywheel.label.annotator import truth_sku

        truths = self.frame_truths(turn, day, carts, minutes, frame_ids)
        return lambda fid: truth_sku(truths(fid))

    def frame_truths(self, turn: int, day: str, carts: int, minutes: float, frame_ids: list[str]):
        """frame id -> the simulator's FrameTruth (UNKNOWN: not a frame of that turn's fleet)."""
        from flywheel.label.annotator import fleet_truths

        return fleet_truths(self.lake, day, frame_ids, seed=self.fleet_seed(turn), carts=carts,
                            minutes=minutes, world_seed=self.settings.world_seed)

    def review(self, turn: int, day: str, carts: int, minutes: float,
               earlier: dict[str, tuple[int, int, float]] | None = None) -> dict:
        """The simulated annotator answers the day's open tasks (a CorrectionBatchV1 in landing/).
        `earlier`: capture day -> (turn, carts, minutes) of the earlier turns, for the truth of
        the earlier days' deferred frames the run took (flywheel.label.backlog)."""
        from flywheel.label.annotator import (
            UNKNOWN,
            AnnotatorConfig,
            answered_task_ids,
            simulate_review,
            truth_box,
            truth_sku,
        )
        from flywheel.label.backlog import origin_days
        from flywheel.label.review_tasks import read_tasks
        from flywheel.learner.reference_sets import catalog_skus

        tasks = read_tasks(self.lake, day)
        done = answered_task_ids(self.lake, day)
        open_tasks = [t for t in tasks if t.task_id not in done]
        ids = sorted({f for t in open_tasks for f in t.frame_ids})
        earlier = earlier or {}
        lookups = [self.frame_truths(turn, day, carts, minutes, ids)]
        for d in (d for d in origin_days(self.lake, day) if d in earlier):
            t, c, m = earlier[d]
            lookups.append(self.frame_truths(t, d, c, m, ids))

        def frame_truth(fid: str):
            return next((t for t in (f(fid) for f in lookups) if t is not UNKNOWN), UNKNOWN)

        report = simulate_review(self.lake, day, open_tasks, sorted(catalog_skus(self.lake)),
                                 lambda f: truth_sku(frame_truth(f)),
                                 AnnotatorConfig(seed=self.fleet_seed(turn)),
                                 box_of=lambda f: truth_box(frame_truth(f)))
        return {"tasks": report.tasks_answered, "frames": report.frames_answered,
                "seconds": round(report.seconds, 1), "wrong_answers": report.wrong_answers,
                "boxes": report.boxes_drawn, "box_seconds": round(report.box_seconds, 1),
                "batch": report.batch_key}

    def merge(self, day: str) -> dict:
        """The corrections sensor's tick files the batch; merged_labels runs for the day."""
        from jobs.label import evaluate_corrections

        context = dg.build_sensor_context(instance=self.instance, resources={
            "lake": self.lake_resource, "index": self.index_resource})
        tick = evaluate_corrections(context, self.lake_resource, self.index_resource)
        days = {r.partition_key for r in (getattr(tick, "run_requests", None) or [])} | {day}
        out = {}
        for d in sorted(days):
            hints = self.settings.detector_hints
            config = ({} if hints is None
                      else {"ops": {"merged_labels": {"config": {"detector_hints": hints}}}})
            result = self.run_job("merged_labels_job", d, run_config=config)
            if not result.success:
                raise RuntimeError(f"merging {d} failed (run {result.run_id})")
            out[d] = self.meta(result, "merged_labels")
        m = out[day]
        return {"labels": m.get("labels", 0), "auto": m.get("auto", 0), "human": m.get("human", 0),
                "pending": m.get("pending_review", 0)}

    def train(self, bootstrap: bool = False) -> dict:
        """The weekly job: dataset version, training on Ray, evaluation, the blocking gate."""
        epochs = self.settings.bootstrap_epochs if bootstrap else self.settings.epochs
        train = {} if epochs is None else {"epochs": epochs}
        if self.settings.det_epochs is not None:
            train["det_epochs"] = self.settings.det_epochs
        config = {"ops": {"candidate_model": {"config": train}}}
        result = self.run_job("train_and_evaluate", run_config=config)
        if not result.success and not any(e.is_step_failure for e in result.all_events):
            # failed before any step ran (e.g. the local Ray cluster did not start in time on a
            # loaded machine): one more try, said out loud
            print(f"    train: run {result.run_id[:8]} failed to start ({_failure(result)}); retrying",
                  flush=True)
            result = self.run_job("train_and_evaluate", run_config=config)
        gate = [c for c in result.get_asset_check_evaluations() if c.check_name == "release_gate"]
        failed = {e.step_key for e in result.all_events if e.is_step_failure}
        reasons = gate[0].description if gate else ""
        model = self.meta(result, "candidate_model")
        if not gate and not result.success:
            raise RuntimeError(f"training failed at {sorted(failed)}: {_failure(result)} "
                               f"(run {result.run_id})")
        return {"run": result.run_id, "candidate": model.get("model_id"),
                "steps": step_seconds(self.instance, result.run_id),
                "dataset": self.meta(result, "dataset_version").get("version"),
                "gate_passed": bool(gate and gate[0].passed and result.success),
                "gate": reasons or ("passed" if gate and gate[0].passed else "not judged")}

    def release(self, first: bool) -> dict:
        result = self.run_job("release_job", run_config={
            "ops": {"release": {"config": {"stages": self.settings.stages}}}})
        m = self.meta(result, "release")
        if not result.success:
            raise RuntimeError(f"release failed (run {result.run_id})")
        return {"run": result.run_id, "release_id": m.get("release_id"), "stage": m.get("stage"),
                "production_moved": m.get("production_moved")}

    def judge_rollout(self) -> dict:
        s = self.settings
        result = self.run_job("release_rollout_job", run_config={"ops": {"release_rollout": {"config": {
            "stages": s.stages, "min_frames": s.min_frames, "min_barcode_checks": s.min_barcode_checks,
            "min_shadow_frames": s.min_frames}}}})
        m = self.meta(result, "release_rollout")
        return {"run": result.run_id, "action": m.get("action"), "stage": m.get("stage_after",
                                                                                   m.get("stage")),
                "reasons": m.get("reasons", ""), "waiting_for": m.get("waiting_for", ""),
                "production_moved": m.get("production_moved", False)}

    def refresh_figures(self) -> None:
        self.run_job("flywheel_turns_job")


def _failure(result) -> str:
    """The first error message of a failed in-process run."""
    for e in result.all_events:
        if e.is_failure and e.event_specific_data is not None:
            err = getattr(e.event_specific_data, "error", None)
            if err is not None:
                return err.message.strip().splitlines()[-1][:300]
    return "no error message"


def step_seconds(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """Wall seconds of each step of a run, from its events in the instance (first start to last
    success or failure): where a job's time goes, e.g. dataset vs training vs gate."""
    ends = {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    start: dict[str, float] = {}
    end: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or not event.step_key:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            start.setdefault(event.step_key, entry.timestamp)
        elif event.event_type in ends:
            end[event.step_key] = entry.timestamp
    return {k: round(end[k] - t, 2) for k, t in start.items() if k in end}


def timed(fn, *args, **kwargs) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, round(time.perf_counter() - t, 2)
