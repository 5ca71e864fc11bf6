"""Deferred frames come back: day 2's review run, in a real Dagster instance, takes day 1's still
unmerged deferred frames (oldest first, within its batch; a release between the days moved the index
to the new model's table), the simulated annotator answers them,
the corrections sensor files the answers to day 1 and day 1's merged_labels merges them with their
provenance; nothing merged before is overwritten, nothing is asked twice."""

from __future__ import annotations

import dagster as dg
import pytest

from edge_agent.lake import Lake
from tests.label.review_day import build_fleet_day, noisy_prelabels

DAY1, DAY2 = "2026-11-24", "2026-12-01"
BATCH = 4  # review tasks per run: day 1 defers most of its doubtful frames


def _resources(lake: Lake) -> dict:
    from resources.index import LocalIndexResource
    from resources.lake import LocalLakeResource
    from resources.lineage import LakeRefIOManager

    lake_res = LocalLakeResource(root=str(lake.local_path()))
    return {"lake": lake_res, "index": LocalIndexResource(),
            "ref_io_manager": LakeRefIOManager(lake=lake_res)}


def _answer(lake: Lake, day: str, truth: dict, catalog: list[str]) -> int:
    """The perfect simulated annotator answers the day's open tasks (one batch into landing/)."""
    from flywheel.label.annotator import AnnotatorConfig, answered_task_ids, simulate_review
    from flywheel.label.review_tasks import read_tasks

    done = answered_task_ids(lake, day)
    tasks = [t for t in read_tasks(lake, day) if t.task_id not in done]
    report = simulate_review(lake, day, tasks, catalog, lambda f: truth[f], AnnotatorConfig(error_rate=0.0))
    return report.tasks_answered


def _merge(instance: dg.DagsterInstance, res: dict) -> set[str]:
    """The corrections sensor's tick, then merged_labels for every day it asks for."""
    from assets.label_review import merged_labels
    from jobs.label import corrections_sensor

    ctx = dg.build_sensor_context(instance=instance, resources={k: res[k] for k in ("lake", "index")})
    days = {r.partition_key for r in corrections_sensor(ctx).run_requests or []}
    for d in sorted(days):
        assert dg.materialize([merged_labels], partition_key=d, instance=instance, resources=res).success
    return days


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.e2e  # two real fleet days through Dagster, ~150 s: make test-e2e
def test_a_frame_deferred_on_day_1_is_routed_and_merged_on_day_2s_run(tmp_path) -> None:
    from assets.depot import capture_days
    from assets.label_review import review_queue
    from flywheel.label.merge import read_merged
    from flywheel.label.review_tasks import read_backlog, read_routes, read_tasks

    lake = Lake.at_path(tmp_path / "lake")
    days = [build_fleet_day(lake, tmp_path / "fleet1", DAY1, carts=2, minutes=0.5, seed=3),
            build_fleet_day(lake, tmp_path / "fleet2", DAY2, carts=2, minutes=0.5, seed=4)]
    for fd in days:
        noisy_prelabels(lake, fd, abstain=0.3)
    # a release between the days: day 2 is indexed under the new production model's table, day 1
    # stays in the descriptor's (a day-2 batch answering day-1 frames was once quarantined whole)
    from flywheel.depot.embed import load_encoder, resolve_spec
    from flywheel.depot.index import index_day
    from tests.depot.tiny_models import register_tiny_production_model

    register_tiny_production_model(lake, tmp_path)
    assert index_day(lake, DAY2, load_encoder(resolve_spec(lake), lake)).table.startswith("frames_model_")
    truth = {**days[0].truth, **days[1].truth}
    catalog = days[0].catalog
    res = _resources(lake)
    rule = {"ops": {"review_queue": {"config": {"max_review_tasks": BATCH, "budget_s": 10_000.0}}}}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(capture_days.name, [DAY1, DAY2])
        # day 1: a batch of 4 tasks, the rest of its doubtful frames deferred
        assert dg.materialize([review_queue], partition_key=DAY1, instance=instance, resources=res,
                              run_config=rule).success
        deferred = {r["frame_id"]: r["reason"] for r in read_routes(lake, DAY1) if r["route"] == "deferred"}
        assert len(deferred) > BATCH
        assert _answer(lake, DAY1, truth, catalog) == len(read_tasks(lake, DAY1))
        assert _merge(instance, res) == {DAY1}
        before = {r["frame_id"]: r for r in read_merged(lake, DAY1).to_pylist()}
        routes1 = read_routes(lake, DAY1)
        assert before and not set(before) & set(deferred)

        # day 2's run takes day 1's backlog first, within the same batch
        run = dg.materialize([review_queue], partition_key=DAY2, instance=instance, resources=res,
                             run_config=rule)
        assert run.success
        md = run.asset_materializations_for_node("review_queue")[0].metadata
        tasks = read_tasks(lake, DAY2)
        review = [t for t in tasks if t.kind == "review"]
        assert len(review) == BATCH  # the cap holds over the backlog and the day's own work together
        taken = {f for t in review for f in t.frame_ids if f in deferred}
        first = [f"deferred {DAY1}" in t.reason for t in sorted(review, key=lambda t: t.rank)]
        assert taken and first[0] and first == sorted(first, reverse=True)  # the backlog goes first
        backlog = {r["frame_id"]: r for r in read_backlog(lake, DAY2)}
        assert set(backlog) == set(deferred)  # every waiting frame: taken or deferred again
        assert md["backlog_routed"].value == len(taken) == sum(1 for r in backlog.values() if r["task_id"])
        assert md["backlog_deferred_again"].value == len(deferred) - len(taken)
        assert md["backlog_days"].value == [DAY1]
        assert all(r["review_run"] == run.run_id and r["deferred_reason"] == deferred[f]
                   for f, r in backlog.items())
        assert not set(deferred) & {r["frame_id"] for r in read_routes(lake, DAY2)}  # day 1's stay day 1's
        assert read_routes(lake, DAY1) == routes1  # day 1's partition is not rewritten

        # a re-run of day 1 before the answers leaves the taken frames to day 2's tasks
        assert dg.materialize([review_queue], partition_key=DAY1, instance=instance, resources=res,
                              run_config=rule).success
        rerun = {r["frame_id"]: r for r in read_routes(lake, DAY1)}
        assert all(rerun[f]["route"] == "deferred" and DAY2 in rerun[f]["reason"] for f in taken)
        assert not taken & {f for t in read_tasks(lake, DAY1) for f in t.frame_ids}
        _answer(lake, DAY1, truth, catalog)  # day 1's new tasks (more of its own deferred frames)
        assert _merge(instance, res) <= {DAY1}
        before = {r["frame_id"]: r for r in read_merged(lake, DAY1).to_pylist()}
        deferred = {f: why for f, why in deferred.items() if f not in before}

        # answered on day 2's run, filed to day 1 by the sensor, merged into day 1 with provenance
        assert _answer(lake, DAY2, truth, catalog) == len(tasks)
        assert _merge(instance, res) == {DAY1, DAY2}
        after = {r["frame_id"]: r for r in read_merged(lake, DAY1).to_pylist()}
        for f, r in before.items():  # nothing merged before is overwritten
            assert after[f] == r
        new = {f: r for f, r in after.items() if f not in before}
        assert set(new) == taken
        leaders = {t.frame_ids[0] for t in review}
        assert all(r["label"] == truth[f] for f, r in new.items() if f in leaders)
        assert all(r["source"] == "human" and r["review_day"] == DAY2
                   and r["review_run"] == run.run_id and r["deferred_reason"] == deferred[f]
                   and r["route"] == "deferred" for f, r in new.items())
        assert not set(new) & {r["frame_id"] for r in read_merged(lake, DAY2).to_pylist()}

        # never twice: day 2's next run does not ask for them again, its record keeps their
        # provenance, and nothing is left open to answer
        again = dg.materialize([review_queue], partition_key=DAY2, instance=instance, resources=res,
                               run_config=rule)
        assert again.success
        asked = {f for t in read_tasks(lake, DAY2) for f in t.frame_ids}
        assert not asked & set(new)
        kept = {r["frame_id"]: r for r in read_backlog(lake, DAY2)}
        assert all(kept[f]["review_run"] == run.run_id for f in new)
        _answer(lake, DAY2, truth, catalog)
        _merge(instance, res)
        final = {r["frame_id"]: r for r in read_merged(lake, DAY1).to_pylist()}
        assert all(final[f] == after[f] for f in after)  # the earlier answers stand, provenance too
        assert sum(1 for r in final.values() if r["review_day"] == DAY2) >= len(new)
