"""The Depot in a real Dagster instance: sensor tick -> partitioned ingest run -> metadata."""

from __future__ import annotations

import dagster as dg

from assets.depot import capture_days, depot_frames
from jobs.depot import landing_clips_sensor
from resources.encoder import EncoderResource
from resources.lake import LocalLakeResource
from tests.support.clips import build_clip, land, land_clip, sidecar_with

DAY = "2026-11-24"


def test_sensor_then_materialize_reports_counts_rejects_and_a_replay(local_lake) -> None:
    good = land_clip(local_lake, seed=1)
    bad = build_clip(seed=2, device_id="cart-bad")
    land(local_lake, bad, sidecar_bytes=sidecar_with(bad, schema_version=7))
    lake_res = LocalLakeResource(root=str(local_lake.local_path()))
    resources = {"lake": lake_res, "encoder": EncoderResource(kind="descriptor")}
    with dg.instance_for_test() as instance:
        ctx = dg.build_sensor_context(instance=instance, resources={"lake": lake_res})
        tick = landing_clips_sensor(ctx)
        (req,) = tick.run_requests
        days = list(tick.dynamic_partitions_requests[0].partition_keys)
        instance.add_dynamic_partitions(capture_days.name, days)
        result = dg.materialize([depot_frames], partition_key=req.partition_key, instance=instance,
                                resources=resources)
        assert result.success
        (mat,) = result.asset_materializations_for_node("depot_frames")
        md = mat.metadata
        assert md["clips_ingested"].value == 1 and md["rejected_clips"].value == 1
        assert md["reject_reasons"].value == {"unknown_schema_version": 2}
        assert "unknown_schema_version" in md["quarantined"].value
        assert md["rows_total"].value > 0
        replay = md[f"replay_{good.clip_id[:8]}"].value
        assert "data:image/png;base64," in replay
        (check,) = result.get_asset_check_evaluations()
        assert check.check_name == "reject_rate" and not check.passed
        assert check.metadata["actual"].value == 0.5 and check.metadata["threshold"].value == 0.2
        # the same partition again: nothing new, same rows, no duplicates
        again = dg.materialize([depot_frames], partition_key=DAY, instance=instance,
                               resources=resources)
        md2 = again.asset_materializations_for_node("depot_frames")[0].metadata
        assert md2["clips_ingested"].value == 0 and md2["clips_already_ingested"].value == 1
        assert md2["rows_total"].value == md["rows_total"].value
