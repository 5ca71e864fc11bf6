"""The review loop on a real simulated fleet day, in a real Dagster instance: review_queue (LanceDB
near-duplicate tasks, Label Studio / COCO / YOLO exports) -> `flywheel label review --simulate`
(CorrectionBatchV1 into landing/) -> corrections sensor tick -> merged_labels -> Learner columns."""

from __future__ import annotations

import json
import zipfile
from io import BytesIO

import dagster as dg
import pytest

from edge_agent.contract.layout import corrections_key
from edge_agent.lake import Lake
from tests.label.review_day import DAY, build_fleet_day, noisy_prelabels


@pytest.fixture(scope="module")
def fleet_day(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("review-fleet")
    lake = Lake.at_path(work / "lake")
    fd = build_fleet_day(lake, work / "fleet")
    noisy_prelabels(lake, fd)
    return lake, fd


def _resources(lake: Lake) -> dict:
    from resources.index import LocalIndexResource
    from resources.lake import LocalLakeResource
    from resources.lineage import LakeRefIOManager

    lake_res = LocalLakeResource(root=str(lake.local_path()))
    return {"lake": lake_res, "index": LocalIndexResource(),
            "ref_io_manager": LakeRefIOManager(lake=lake_res)}


@pytest.mark.slow
@pytest.mark.integration
def test_the_routing_rule_through_the_asset_bounds_human_work_by_counts(fleet_day) -> None:
    """The review_queue asset with a tight rule: one task per predicted class, a batch of 5 tasks,
    an audit sized for a wide interval; the rest waits (never auto-accepted) and the metadata says
    why. The measured 1x vs 10x fleet ratio is bench_label_review --scale."""
    from assets.depot import capture_days
    from assets.label_review import review_queue
    from flywheel.label.review_tasks import read_routes, read_tasks
    from flywheel.label.routing import audit_sample_size, stratum_of
    from flywheel.label.tables import read_prelabels

    lake, _ = fleet_day
    rule = {"class_quota": 1, "max_review_tasks": 5, "audit_half_width": 0.2, "budget_s": 10_000.0}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(capture_days.name, [DAY])
        run = dg.materialize([review_queue], partition_key=DAY, instance=instance, resources=_resources(lake),
                             run_config={"ops": {"review_queue": {"config": rule}}})
        assert run.success
        md = run.asset_materializations_for_node("review_queue")[0].metadata
    tasks, routes = read_tasks(lake, DAY), read_routes(lake, DAY)
    pre = {r["frame_id"]: r for r in read_prelabels(lake, DAY).to_pylist()}
    review = [t for t in tasks if t.kind == "review"]
    assert len(review) == 5 and len({stratum_of(pre[t.frame_ids[0]]) for t in review}) == 5
    reasons = [r["reason"] for r in routes if r["route"] == "deferred"]
    assert md["deferred_over_class_quota"].value == sum("class quota" in r for r in reasons) > 0
    assert any("over the batch (5 tasks)" in r for r in reasons)
    # the audit is a count for the interval width, out of everything confident enough to accept
    accepted = sum(r["route"] in ("auto", "audit") for r in routes)
    assert md["audit_sample"].value == sum(r["route"] == "audit" for r in routes) == audit_sample_size(
        accepted, half_width=0.2) > 0
    assert md["deferred_over_budget"].value == len(reasons)  # every deferred frame waits, none is auto
    assert all(pre[r["frame_id"]]["label"] is None or pre[r["frame_id"]]["confidence"] < 0.97
               or pre[r["frame_id"]]["disagreement"] for r in routes if r["route"] == "deferred")


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.e2e  # ~90 s: make test-e2e
def test_review_loop_on_a_fleet_day(fleet_day) -> None:
    from assets.depot import capture_days
    from assets.label_review import merged_labels, review_queue
    from flywheel.cli import main
    from flywheel.label.corrections import FOREIGN_FRAMES, batch_doc
    from flywheel.label.merge import read_merged
    from flywheel.label.review_tasks import read_routes, read_tasks, review_key
    from flywheel.label.tables import read_prelabels
    from flywheel.learner.labelled_frames import read_frames as learner_frames
    from jobs.label import corrections_sensor

    lake, fd = fleet_day
    res = _resources(lake)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(capture_days.name, [DAY])
        run = dg.materialize([review_queue], partition_key=DAY, instance=instance, resources=res,
                             run_config={"ops": {"review_queue": {"config": {"budget_s": 300.0}}}})
        assert run.success
        md = run.asset_materializations_for_node("review_queue")[0].metadata
        pre = read_prelabels(lake, DAY)
        assert md["frames_in"].value == pre.num_rows > 0
        assert md["near_duplicate_grouping"].value.startswith("lancedb, one item per task")
        assert md["planned_human_s"].value <= 300.0 and md["tasks"].value > 0
        tasks = read_tasks(lake, DAY)
        routes = {r["frame_id"]: r for r in read_routes(lake, DAY)}
        assert set(routes) == set(pre.column("frame_id").to_pylist())
        # groups: near-duplicates of ONE clip and one item
        clip = {r["frame_id"]: r["clip_id"] for r in pre.select(["frame_id", "clip_id"]).to_pylist()}
        groups = [t for t in tasks if len(t.frame_ids) > 1]
        assert groups and md["near_duplicates_folded"].value == sum(len(t.frame_ids) - 1 for t in tasks)
        assert all(len({clip[f] for f in t.frame_ids}) == 1 for t in groups)
        same = sum(len({fd.truth[f] for f in t.frame_ids}) == 1 for t in groups)
        assert same / len(groups) >= 0.95  # one item per task (8/8 groups here)
        # nothing doubtful is auto-accepted; over-budget frames wait
        assert all(r["confidence"] >= 0.9 for r in routes.values() if r["route"] == "auto")
        assert md["deferred_over_budget"].value == sum(r["route"] == "deferred" for r in routes.values())
        # exports: Label Studio tasks with predictions, COCO, YOLO
        ls = json.loads(lake.get(review_key(DAY, "label_studio.json")))
        assert len(ls) == len(tasks) and ls[0]["data"]["task_id"] == tasks[0].task_id
        proposed = [t for t in ls if "predictions" in t]
        assert proposed and proposed[0]["predictions"][0]["result"][0]["value"]["choices"][0] in fd.catalog
        assert lake.exists(ls[0]["data"]["image"].split("/lake/", 1)[1])
        coco = json.loads(lake.get(review_key(DAY, "coco.json")))
        assert len(coco["images"]) == len(tasks) and len(coco["categories"]) == len(fd.catalog)
        names = zipfile.ZipFile(BytesIO(lake.get(review_key(DAY, "yolo.zip")))).namelist()
        assert "data.yaml" in names and sum(n.startswith("labels/") for n in names) == len(tasks)
        assert "<Choices" in lake.get(review_key(DAY, "label_studio.xml")).decode()

        # the simulated annotator, through the CLI, lands one batch; a foreign batch lands too
        assert main(["label", "review", "--day", DAY, "--simulate", "--lake", str(lake.local_path()),
                     "--seed", "3", "--error-rate", "0"]) == 0
        (landed,) = [i.key for i in lake.list("landing/corrections")]
        lake.put(corrections_key("stray"), batch_doc("stray", "cvat", [{
            "frame_id": "no-such-clip-000001", "action": "reject", "annotator": "x",
            "corrected_at": "2026-11-24T12:00:00Z"}]))
        ctx = dg.build_sensor_context(instance=instance, resources={k: res[k] for k in ("lake", "index")})
        tick = corrections_sensor(ctx)
        (req,) = tick.run_requests
        assert req.partition_key == DAY
        reason = json.loads(lake.get("depot/quarantine/corrections/stray.json.reason.json"))
        assert reason["reason"] == FOREIGN_FRAMES
        assert not lake.exists(landed)

        merged = dg.materialize([merged_labels], partition_key=DAY, instance=instance, resources=res)
        assert merged.success
        mmd = merged.asset_materializations_for_node("merged_labels")[0].metadata
        (check,) = merged.get_asset_check_evaluations()
        assert check.metadata["threshold"].value == 0.05 and "actual" in check.metadata
        table = read_merged(lake, DAY).to_pylist()
        human = [r for r in table if r["source"] == "human"]
        assert mmd["human"].value == len(human) > 0 and mmd["auto"].value > 0
        assert all(r["annotator"] == "sim-annotator-1" and r["tool"] == "flywheel-sim-annotator"
                   and r["task_id"] and r["corrected_at"] for r in human)
        # with a perfect annotator, human labels match the truth of the task's leader frame
        leaders = {t.frame_ids[0] for t in tasks}
        assert all(r["label"] == fd.truth[r["frame_id"]] for r in human if r["frame_id"] in leaders)
        audited = [r for r in table if r["route"] == "audit"]
        assert mmd["audited_frames"].value == len(audited)
        # re-running gives the same table; the labelled frames read as Learner frames
        before = lake.get("label/merged/date=2026-11-24/merged.parquet")
        assert dg.materialize([merged_labels], partition_key=DAY, instance=instance, resources=res).success
        assert lake.get("label/merged/date=2026-11-24/merged.parquet") == before
        frames = learner_frames(lake.get("label/merged/date=2026-11-24/frames.parquet"))
        assert frames.height == len(table) == mmd["labelled_frames"].value
        assert frames["image_png"][0][:4] == b"\x89PNG"

        # merged_labels is an input of dataset_version: the day's labelled frames join the manual set
        import assets.learner as la
        from flywheel.learner.pipeline import SimSources, import_from_simulator

        import_from_simulator(lake, SimSources(seed=3, n_per_sku=3, n_test=20))
        ds = dg.materialize([la.dataset_version, merged_labels], selection=["dataset_version"],
                            instance=instance, resources=res)
        assert ds.success
        dmd = ds.asset_materializations_for_node("dataset_version")[0].metadata
        assert dmd["label_days"].value == [DAY] and dmd["label_frames"].value == len(table)
        manual = ds.asset_materializations_for_node("dataset_version")[0]
        assert manual.metadata["members"].value >= len(table)

        # next iteration: human-labelled frames are not queued again
        again = dg.materialize([review_queue], partition_key=DAY, instance=instance, resources=res)
        amd = again.asset_materializations_for_node("review_queue")[0].metadata
        assert "| human | " in amd["routes"].value
        assert not ({f for t in read_tasks(lake, DAY) for f in t.frame_ids} & {r["frame_id"] for r in human})
