"""The hand-off from Manage to Label: a successful ingest of a capture day asks for that day's
labelling run (filter, pre-label, review queue); a run without a day asks for nothing."""

from __future__ import annotations

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.test_utils import create_run_for_test

from jobs.loop import label_after_ingest


def _context(instance, tags: dict):
    run = create_run_for_test(instance, "depot_ingest_job", tags=tags,
                              status=dg.DagsterRunStatus.SUCCESS)
    event = DagsterEvent(event_type_value=DagsterEventType.RUN_SUCCESS.value,
                         job_name="depot_ingest_job")
    return dg.build_run_status_sensor_context(sensor_name=label_after_ingest.name,
                                              dagster_instance=instance, dagster_run=run,
                                              dagster_event=event), run


def test_an_ingested_day_is_labelled_next() -> None:
    with dg.instance_for_test() as instance:
        context, run = _context(instance, {"dagster/partition": "2026-11-02", "depot/day": "2026-11-02"})
        request = label_after_ingest(context)
        assert isinstance(request, dg.RunRequest)
        assert request.partition_key == "2026-11-02" and request.run_key == f"label:{run.run_id}"
        context, _ = _context(instance, {})
        assert isinstance(label_after_ingest(context), dg.SkipReason)
