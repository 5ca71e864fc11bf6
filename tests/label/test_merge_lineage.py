"""merged_labels hands a typed reference downstream; an unpartitioned consumer (dataset_version)
gets one per capture day that was merged, never-merged days left out."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from flywheel.refs import LabelsRef

DAYS = ["2026-11-24", "2026-11-25"]
SEEN: dict = {}


def test_unpartitioned_consumer_gets_a_reference_per_merged_day(local_lake) -> None:
    from assets.depot import capture_days
    from assets.label_review import merged_labels
    from flywheel.label.corrections import batch_doc, day_batch_key
    from flywheel.label.review_tasks import _put_parquet, review_key, routes_schema
    from resources.lake import LocalLakeResource
    from resources.lineage import LakeRefIOManager

    day = DAYS[0]
    _put_parquet(local_lake, review_key(day, "routes.parquet"),
                 [{"frame_id": "c-000001", "route": "review", "task_id": "review-x", "label": None,
                   "confidence": 0.0, "reason": "abstain"}], routes_schema())
    local_lake.put(day_batch_key(day, "b1"), batch_doc("b1", "cvat", [{
        "frame_id": "c-000001", "action": "reject", "annotator": "ann-1",
        "corrected_at": datetime(2026, 11, 24, 12, tzinfo=UTC)}]))

    @dg.asset(ins={"merged_labels": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())})
    def probe(merged_labels: dict[str, LabelsRef]) -> None:
        SEEN.update(merged_labels)

    lake_res = LocalLakeResource(root=str(local_lake.local_path()))
    res = {"lake": lake_res, "ref_io_manager": LakeRefIOManager(lake=lake_res)}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(capture_days.name, DAYS)
        assert dg.materialize([merged_labels], partition_key=day, instance=instance, resources=res).success
        assert dg.materialize([merged_labels, probe], selection=["probe"], instance=instance,
                              resources=res).success
    assert list(SEEN) == [day]
    ref = SEEN[day]
    assert isinstance(ref, LabelsRef) and ref.day == day and ref.rows == 0  # no Depot frames here
    assert ref.key == "label/merged/date=2026-11-24/frames.parquet"
    ref.read(local_lake)  # the hash still matches what was written
