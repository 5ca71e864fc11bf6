"""The instance config `make demo`/`make ui` write (jobs/instance.py): a run queue whose tag limits
allow one ingest per capture day and one training at a time, judged by Dagster's own queue daemon
logic on runs in a real (SQLite) instance; run monitoring frees the slot of a run whose worker died;
and the tags the jobs carry."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.test_utils import create_run_for_test
from dagster._daemon.controller import create_daemons_from_instance
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

from jobs.instance import DAY_TAG, MAX_RUNTIME_S, TRAINING_TAG, write_instance_yaml


def _run(instance, job: str, tags: dict, event: DagsterEventType):
    """A run moved to QUEUED (or STARTED) by the same event the coordinator reports."""
    origin = RemoteJobOrigin(repository_origin=RemoteRepositoryOrigin(
        code_location_origin=RegisteredCodeLocationOrigin("flywheel"),
        repository_name="__repository__"), job_name=job)
    run = create_run_for_test(instance, job, tags=tags, remote_job_origin=origin)
    instance.report_dagster_event(DagsterEvent(event_type_value=event.value, job_name=job), run.run_id)
    return run


def _dequeued(instance) -> set[str]:
    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    # the daemon's own choice of what to launch next under the instance's limits
    return {r.run_id for r in daemon._get_runs_to_dequeue(instance, instance.get_concurrency_config(), None)}  # noqa: SLF001


def test_the_queue_runs_one_ingest_per_day_and_one_training(tmp_path: Path) -> None:
    path = write_instance_yaml(tmp_path)
    assert "tag_concurrency_limits" in path.read_text()
    q = DagsterEventType.RUN_ENQUEUED
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        runs = {
            "day1_a": _run(instance, "depot_ingest_job", {DAY_TAG: "2026-11-02"}, q),
            "day1_b": _run(instance, "depot_ingest_job", {DAY_TAG: "2026-11-02"}, q),
            "day2": _run(instance, "depot_ingest_job", {DAY_TAG: "2026-11-09"}, q),
            "train_a": _run(instance, "train_and_evaluate", {TRAINING_TAG: "true"}, q),
            "train_b": _run(instance, "train_and_evaluate", {TRAINING_TAG: "true"}, q),
        }
        assert all(instance.get_run_by_id(r.run_id).status == dg.DagsterRunStatus.QUEUED
                   for r in runs.values())
        name = {r.run_id: n for n, r in runs.items()}
        # the first queued run of each day and one training go; the others wait their turn
        assert sorted(name[i] for i in _dequeued(instance)) == ["day1_a", "day2", "train_a"]


def test_a_running_ingest_holds_its_own_day_only(tmp_path: Path) -> None:
    write_instance_yaml(tmp_path)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        _run(instance, "depot_ingest_job", {DAY_TAG: "2026-11-02"}, DagsterEventType.RUN_START)
        _run(instance, "train_and_evaluate", {TRAINING_TAG: "true"}, DagsterEventType.RUN_START)
        same = _run(instance, "depot_ingest_job", {DAY_TAG: "2026-11-02"}, DagsterEventType.RUN_ENQUEUED)
        other = _run(instance, "depot_ingest_job", {DAY_TAG: "2026-11-09"}, DagsterEventType.RUN_ENQUEUED)
        train = _run(instance, "train_and_evaluate", {TRAINING_TAG: "true"}, DagsterEventType.RUN_ENQUEUED)
        picked = _dequeued(instance)
        assert other.run_id in picked
        assert same.run_id not in picked and train.run_id not in picked


class _Daemon:
    """What the monitoring daemon's iteration reads of its workspace process context."""

    def __init__(self, instance) -> None:
        self.instance = instance

    def create_request_context(self) -> None:
        return None  # DefaultRunLauncher's runs: no worker health check, no workspace needed


def test_a_dead_run_releases_its_slot(tmp_path: Path, monkeypatch) -> None:
    import logging
    import time

    from dagster._daemon.monitoring import run_monitoring

    write_instance_yaml(tmp_path)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert "MonitoringDaemon" in {type(d).__name__ for d in create_daemons_from_instance(instance)}
        # a training whose worker died mid-run and an ingest whose worker never came up: both still
        # count as in progress, so the next training and the same day's next ingest wait
        dead = _run(instance, "train_and_evaluate", {TRAINING_TAG: "true"}, DagsterEventType.RUN_START)
        stuck = _run(instance, "depot_ingest_job", {DAY_TAG: "2026-11-02"}, DagsterEventType.RUN_STARTING)
        train = _run(instance, "train_and_evaluate", {TRAINING_TAG: "true"}, DagsterEventType.RUN_ENQUEUED)
        ingest = _run(instance, "depot_ingest_job", {DAY_TAG: "2026-11-02"}, DagsterEventType.RUN_ENQUEUED)
        assert not _dequeued(instance) & {train.run_id, ingest.run_id}

        later = time.time() + MAX_RUNTIME_S + 60  # past both limits
        monkeypatch.setattr(run_monitoring, "get_current_timestamp", lambda: later)
        list(run_monitoring.execute_run_monitoring_iteration(_Daemon(instance), logging.getLogger("t")))
        failed = {instance.get_run_by_id(r.run_id).status for r in (dead, stuck)}
        assert failed == {dg.DagsterRunStatus.FAILURE}
        assert _dequeued(instance) == {train.run_id, ingest.run_id}


def test_an_existing_instance_config_is_kept(tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    write_instance_yaml(tmp_path)
    assert "run_coordinator" not in (tmp_path / "dagster.yaml").read_text()
    write_instance_yaml(tmp_path, overwrite=True)
    assert "run_coordinator" in (tmp_path / "dagster.yaml").read_text()


def test_the_jobs_carry_the_queue_tags() -> None:
    from flywheel.definitions import build_definitions

    defs = build_definitions("local")
    assert defs.resolve_job_def("train_and_evaluate").tags[TRAINING_TAG] == "true"
    assert DAY_TAG == "depot/day"  # what the landing sensors set on every ingest request
