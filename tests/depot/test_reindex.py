"""After a release the frame encoder is the new production model and the index moves to its table;
the re-index sensor asks for the history under it (real ingest, real LanceDB, a real ultralytics
model as the encoder, Dagster's in-process executor), so search sees every day again."""

from __future__ import annotations

import dagster as dg
import pytest

from assets.depot import capture_days, depot_fleet_rollup, depot_frames, depot_index, landing_clips
from flywheel.depot.index import IndexLocation, open_table, table_names
from jobs.depot import depot_ingest_job, depot_reindex_job, depot_reindex_sensor
from resources.encoder import EncoderResource
from resources.index import LocalIndexResource
from resources.lake import LocalLakeResource
from tests.depot.tiny_models import register_tiny_production_model
from tests.support.clips import land_clip

DAYS = ("2026-11-24", "2026-11-25", "2026-11-26")


def _run(job_name: str, resources: dict, instance: dg.DagsterInstance, day: str) -> None:
    defs = dg.Definitions(assets=[landing_clips, depot_frames, depot_index, depot_fleet_rollup],
                          jobs=[depot_ingest_job, depot_reindex_job], resources=resources)
    assert defs.resolve_job_def(job_name).execute_in_process(instance=instance, partition_key=day).success


@pytest.mark.slow
def test_a_release_re_indexes_history_under_the_new_encoder(local_lake, tmp_path) -> None:
    for i, day in enumerate(DAYS):
        for s in range(2):
            land_clip(local_lake, day=day, seed=10 * i + s, product=s, device_id=f"cart-{s}")
    lake_res = LocalLakeResource(root=str(local_lake.local_path()))
    before = {"lake": lake_res, "index": LocalIndexResource(), "encoder": EncoderResource(kind="auto")}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(capture_days.name, list(DAYS))
        for day in DAYS[:2]:  # no model yet: the descriptor indexes the first two days
            _run("depot_ingest_job", before, instance, day)
        ctx = dg.build_sensor_context(instance=instance, resources=before)
        skip = depot_reindex_sensor(ctx).skip_reason.skip_message
        assert skip.startswith("every indexed day is in frames_descriptor")

        register_tiny_production_model(local_lake, tmp_path)  # a release moves the encoder
        _run("depot_ingest_job", before, instance, DAYS[2])  # the next day lands in the model's table
        table, spec = open_table(local_lake)
        assert spec["kind"] == "production_model"
        assert sorted(set(table.to_arrow()["date"].to_pylist())) == [DAYS[2]]

        tick = depot_reindex_sensor(dg.build_sensor_context(instance=instance, resources=before))
        runs = tick.run_requests
        assert [r.partition_key for r in runs] == [DAYS[1], DAYS[0]]  # newest first, the new day not again
        assert all(r.run_key.startswith("reindex:frames_model_") and r.tags["depot/day"] == r.partition_key
                   for r in runs)
        for r in runs:
            _run("depot_reindex_job", before, instance, r.partition_key)
        table, _ = open_table(local_lake)
        assert sorted(set(table.to_arrow()["date"].to_pylist())) == sorted(DAYS)  # search sees history
        assert len(table_names(IndexLocation.for_lake(local_lake).connect())) == 2
        again = depot_reindex_sensor(dg.build_sensor_context(instance=instance, resources=before))
        assert not again.run_requests and "every indexed day" in again.skip_reason.skip_message

