"""Human review in a REAL Label Studio (the server `make labelstudio-install` put in its own venv,
started here on a free port with a temporary data dir, stopped after), on a real simulated fleet day:
push the day's review batch (config, tasks with the ensemble's predictions, links to frame and clip),
annotate through the API as the simulated annotator would, pull through the Dagster sensor, and find
the human labels in merged_labels with their provenance. Bad input: a choice the project does not
offer, a deleted task, an annotation of a frame the Depot no longer has, a server that is down."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from edge_agent.lake import Lake
from tests.label.review_day import DAY, build_fleet_day, noisy_prelabels
from tests.support.labelstudio import label_studio, label_studio_bin

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.labelstudio]


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory):
    binary = label_studio_bin()
    if binary is None:
        pytest.skip("Label Studio is not installed: run `make test-labelstudio` (.ci/run does)")
    with label_studio(tmp_path_factory.mktemp("labelstudio"), binary) as server:
        yield server


@pytest.fixture(scope="module")
def review_day(tmp_path_factory: pytest.TempPathFactory):
    from flywheel.depot.index import IndexLocation
    from flywheel.label.queue import queue_day
    from flywheel.label.routing import RoutingConfig

    work = tmp_path_factory.mktemp("studio-fleet")
    lake = Lake.at_path(work / "lake")
    fd = build_fleet_day(lake, work / "fleet")
    noisy_prelabels(lake, fd, sure_wrong=4)
    # the proportional audit draw (2 %): the count-sized default audits most of a small day's
    # auto-accepted frames, leaving the audit's suspects nothing outside the queue to add
    rule = RoutingConfig(budget_s=300.0, audit_rate=0.02)
    routing, _, _ = queue_day(lake, DAY, rule, IndexLocation.for_lake(lake))
    assert routing.tasks
    return lake, fd


def _resources(lake: Lake, studio) -> dict:  # noqa: ANN001
    from resources.index import LocalIndexResource
    from resources.labelstudio import LabelStudioResource
    from resources.lake import LocalLakeResource
    from resources.lineage import LakeRefIOManager

    lake_res = LocalLakeResource(root=str(lake.local_path()))
    return {"lake": lake_res, "index": LocalIndexResource(),
            "ref_io_manager": LakeRefIOManager(lake=lake_res),
            "labelstudio": LabelStudioResource(url=studio.url, api_key=studio.token)}


def _choice(sku: str | None) -> list[dict]:
    from flywheel.label.review_tasks import FROM_NAME, NO_PRODUCT, TO_NAME

    return [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices",
             "value": {"choices": [sku if sku is not None else NO_PRODUCT]}}]


def test_round_trip_through_a_real_label_studio(studio, review_day, capsys) -> None:
    from assets.depot import capture_days
    from assets.label_review import merged_labels
    from flywheel.cli import main
    from flywheel.depot.quarantine import QUARANTINE
    from flywheel.label.merge import read_merged
    from flywheel.label.review_tasks import read_tasks
    from flywheel.label.studio import (
        FRAME_GONE,
        UNKNOWN_CHOICE,
        StudioUnavailable,
        connect,
        pull_day,
        push_day,
        read_state,
    )
    from jobs.label_studio import label_studio_sensor

    lake, fd = review_day
    root = str(lake.local_path())
    client = connect(studio.url, studio.token)
    tasks = {t.task_id: t for t in read_tasks(lake, DAY)}

    # push through the CLI: one project for the day's batch, every open task, predictions, links
    args = ["label", "push", "--lake", root, "--day", DAY, "--url", studio.url, "--api-key", studio.token,
            "--json"]
    assert main(args) == 0
    pushed = json.loads(capsys.readouterr().out)
    assert pushed["created"] and pushed["imported"] == len(tasks)
    state = read_state(lake, DAY)
    project = client.projects.get(id=state.project_id)
    assert "<Choices" in project.label_config and "<RectangleLabels" in project.label_config
    assert all(f'value="{s}"' in project.label_config for s in fd.catalog)
    ls_tasks = list(client.tasks.list(project=state.project_id, fields="all"))
    assert len(ls_tasks) == len(tasks) == len(state.tasks)
    one = next(t for t in ls_tasks if tasks[t.data["task_id"]].proposed_label is not None)
    assert one.data["image"].startswith("data:image/jpeg;base64,") and one.data["clip_id"]
    assert one.data["replay"] == f"flywheel replay {one.data['clip_id']} --day {DAY}"
    assert one.data["frame_ids"] == tasks[one.data["task_id"]].frame_ids
    pred = client.predictions.list(task=one.id)[0]
    assert pred.result[0]["value"]["choices"] == [tasks[one.data["task_id"]].proposed_label]
    assert main(args) == 0 and json.loads(capsys.readouterr().out)["imported"] == 0  # idempotent

    # annotate through the API as the simulated annotator would: the truth of each task's leader
    by_task = {t.data["task_id"]: t for t in ls_tasks}
    answered = sorted(by_task)[:6]
    for tid in answered:
        client.annotations.create(id=by_task[tid].id, result=_choice(fd.truth[tasks[tid].frame_ids[0]]))
    res = _resources(lake, studio)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(capture_days.name, [DAY])
        sensor_res = {k: res[k] for k in ("lake", "index", "labelstudio")}
        with dg.build_sensor_context(instance=instance, resources=sensor_res) as ctx:
            result = label_studio_sensor(ctx)
        assert [r.partition_key for r in result.run_requests] == [DAY]
        assert dg.materialize([merged_labels], partition_key=DAY, instance=instance, resources=res).success
        # nothing new: no batch, no run
        with dg.build_sensor_context(instance=instance, resources=sensor_res) as ctx:
            assert not label_studio_sensor(ctx).run_requests
    merged = {r["frame_id"]: r for r in read_merged(lake, DAY).to_pylist()}
    ann = {a.id for tid in answered for a in client.annotations.list(id=by_task[tid].id)}
    for tid in answered:
        for f in tasks[tid].frame_ids:
            row = merged[f]
            truth = fd.truth[tasks[tid].frame_ids[0]]
            assert (row["source"], row["tool"], row["label"]) == ("human", "label-studio", truth)
            assert row["task_id"] == tid and row["annotator"] == "ls-admin-flywheel.local"
            assert int(row["annotation_id"].split(":")[1]) in ann
    human_before = {f for f, r in merged.items() if r["source"] == "human"}

    # bad input: a choice the project does not offer, a deleted task, a frame the Depot lost
    rest = [tid for tid in sorted(by_task) if tid not in answered]
    client.annotations.create(id=by_task[rest[0]].id, result=_choice("0000000000000"))
    client.annotations.create(id=by_task[rest[1]].id, result=_choice(fd.truth[tasks[rest[1]].frame_ids[0]]))
    client.tasks.delete(id=str(by_task[rest[1]].id))  # annotated, then deleted before the pull
    client.projects.import_tasks(id=state.project_id, request=[{"data": {
        **one.data, "task_id": "review-gone", "frame_ids": ["frame-that-left-the-depot"]}}])
    gone = next(t for t in client.tasks.list(project=state.project_id, fields="all")
                if t.data.get("task_id") == "review-gone")
    client.annotations.create(id=gone.id, result=_choice(fd.catalog[0]))
    client.annotations.create(id=by_task[rest[2]].id, result=_choice(fd.truth[tasks[rest[2]].frame_ids[0]]))
    from flywheel.depot.index import frame_tables
    from flywheel.label.corrections import index_frame_days, scan_corrections
    from flywheel.label.merge import merge_labels_day
    from flywheel.label.studio import day_catalog

    tables = frame_tables(lake)
    assert main(["label", "pull", *args[2:]]) == 0  # the CLI: same options as push
    report = json.loads(capsys.readouterr().out)
    assert report["quarantined"] == {UNKNOWN_CHOICE: 1, FRAME_GONE: 1}
    assert rest[1] in report["missing_tasks"] and report["annotations"] == 1
    reasons = [json.loads(lake.get(i.key))["reason"] for i in lake.list(QUARANTINE)
               if i.key.endswith(".reason.json")]
    assert sorted(r for r in reasons if r in (UNKNOWN_CHOICE, FRAME_GONE)) == [FRAME_GONE, UNKNOWN_CHOICE]
    scan = scan_corrections(lake, index_frame_days(tables))
    assert scan.accepted and not scan.rejections
    merge_labels_day(lake, DAY)
    merged = {r["frame_id"]: r for r in read_merged(lake, DAY).to_pylist()}
    human_after = {f for f, r in merged.items() if r["source"] == "human"}
    assert human_before < human_after and set(tasks[rest[2]].frame_ids) <= human_after  # nothing lost
    assert not set(tasks[rest[0]].frame_ids) & human_after  # the unknown choice merged nothing
    # a push re-creates the deleted task (its frames still need a human)
    assert push_day(lake, DAY, client, day_catalog(lake, DAY)).recreated == 1

    # the audit's suspects join the day's project after the review tasks, in rank order
    from flywheel.label.audit import audit_day
    from flywheel.label.studio import SUSPECT_KIND

    queued = {f for t in tasks.values() for f in t.frame_ids}
    fresh = [s for s in audit_day(lake, DAY).suspects if s["frame_id"] not in queued]
    assert fresh
    r = push_day(lake, DAY, client, day_catalog(lake, DAY))
    assert r.suspects == r.imported == len(fresh)
    shown = [t for t in client.tasks.list(project=state.project_id, fields="all")
             if t.data.get("kind") == SUSPECT_KIND]
    assert sorted(t.data["frame_ids"][0] for t in shown) == sorted(s["frame_id"] for s in fresh)
    top = next(t for t in shown if t.data["frame_ids"][0] == fresh[0]["frame_id"])
    assert top.data["reason"] == fresh[0]["reasons"]
    proposed = client.predictions.list(task=top.id)[0].result[0]["value"]["choices"]
    assert proposed == [fresh[0]["label"] or "none"]

    # a server that is down: a clear error, nothing changed
    down = connect("http://127.0.0.1:9", studio.token, timeout_s=2)
    state_before = lake.get(f"label/studio/date={DAY}/project.json")
    with pytest.raises(StudioUnavailable, match="not reachable"):
        pull_day(lake, DAY, down, day_catalog(lake, DAY), index_frame_days(tables))
    with pytest.raises(StudioUnavailable, match="not reachable"):
        push_day(lake, DAY, down, day_catalog(lake, DAY))
    assert main(["label", "push", "--lake", root, "--day", DAY, "--url", "http://127.0.0.1:9",
                 "--api-key", studio.token]) == 2
    assert "Label Studio is not reachable" in capsys.readouterr().err
    assert lake.get(f"label/studio/date={DAY}/project.json") == state_before
    assert {f for f, r in {r["frame_id"]: r for r in read_merged(lake, DAY).to_pylist()}.items()
            if r["source"] == "human"} == human_after
