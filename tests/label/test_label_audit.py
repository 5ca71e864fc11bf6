"""The label audit on a real simulated fleet day through a real Dagster instance: 5 % of the merged
labels made wrong; the audit (cleanlab on out-of-fold k-NN probabilities over the LanceDB index
vectors + the real barcode and weight labelers' votes) ranks them first and changes no label."""

from __future__ import annotations

import dagster as dg
import pytest

from benchmarks.label_audit_history import noisy_history, precision_recall, weak_prelabels
from edge_agent.lake import Lake
from tests.label.review_day import DAY, build_fleet_day


def test_an_audit_over_history_reads_the_vectors_of_the_model_that_indexed_the_day(tmp_path) -> None:
    """A backfill audits a day indexed before the last release: its vectors are in the earlier
    model's table, not the current one (real LanceDB)."""
    import json

    import lancedb
    import numpy as np

    from flywheel.depot.index import CURRENT_KEY
    from flywheel.label.audit import index_vectors

    lake = Lake.at_path(tmp_path / "lake")
    db = lancedb.connect(str(lake.local_path("depot/index")))
    for name, day, v in (("frames_model_old", "2026-11-24", 1.0), ("frames_model_new", "2026-12-01", 2.0)):
        db.create_table(name, data=[{"frame_id": f"{name}-{i}", "date": day, "vector": [v, float(i)]}
                                    for i in range(3)])
    lake.put(CURRENT_KEY, json.dumps({"table": "frames_model_new", "encoder": {}, "uri": ""}).encode())
    old = index_vectors(lake, "2026-11-24")
    assert sorted(old) == [f"frames_model_old-{i}" for i in range(3)]
    assert np.allclose(old["frames_model_old-2"], [1.0, 2.0])
    assert sorted(index_vectors(lake, "2026-12-01")) == [f"frames_model_new-{i}" for i in range(3)]
    assert index_vectors(lake, "2026-10-01") == {}


@pytest.fixture(scope="module")
def audited_day(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("audit-fleet")
    lake = Lake.at_path(work / "lake")
    fd = build_fleet_day(lake, work / "fleet", carts=2, minutes=0.5, seed=3)
    weak_prelabels(lake, DAY)
    bad = noisy_history(lake, DAY, fd.truth, fd.catalog, wrong=0.05, seed=1)
    return lake, fd, bad


def test_audit_rows_without_embeddings_uses_weak_truth_only() -> None:
    from flywheel.label.audit import audit_rows

    votes = {"f1": [{"labeler": "barcode", "label": "4006381333931", "confidence": 0.99, "evidence": "x"}],
             # the weight list is read from the vote's `candidates` (as the routing reads it), not
             # from its evidence text, which names at most five
             "f2": [{"labeler": "weight", "label": None, "confidence": 0.0,
                     "evidence": "abstain: ambiguous: step 500 g at t=1.00s",
                     "candidates": ["5012345678900", "8712345678906"]}],
             "f3": [{"labeler": "barcode", "label": "4006381333931", "confidence": 0.99, "evidence": "x"}],
             # a list of five or more rules out too little to count as weak truth
             "f5": [{"labeler": "weight", "label": None, "confidence": 0.0, "evidence": "abstain",
                     "candidates": [f"50123456789{k:02d}" for k in range(5)]}]}
    res = audit_rows(DAY, {"f1": "5012345678900", "f2": "4006381333931", "f3": "4006381333931", "f4": None,
                           "f5": "4006381333931"}, {}, votes)
    assert [(s["frame_id"], s["reasons"], s["rank"]) for s in res.suspects] == \
        [("f1", "barcode", 1), ("f2", "weight", 2)]
    assert res.suspects[0]["suggested"] == "4006381333931" and res.model.startswith("none")


@pytest.mark.slow
@pytest.mark.integration
def test_label_audit_backfill_ranks_injected_errors_and_changes_no_label(audited_day) -> None:
    from assets.depot import capture_days
    from assets.label_audit import label_audit
    from flywheel.label.audit import read_suspects
    from flywheel.label.merge import merged_key
    from resources.index import LocalIndexResource
    from resources.lake import LocalLakeResource

    lake, fd, bad = audited_day
    before = lake.get(merged_key(DAY))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(capture_days.name, [DAY, "2026-11-25"])
        for day in (DAY, "2026-11-25"):  # a backfill over history: a day without labels is a no-op
            run = dg.materialize([label_audit], partition_key=day, instance=instance,
                                 resources={"lake": LocalLakeResource(root=str(lake.local_path())),
                                            "index": LocalIndexResource()})
            assert run.success
        by_day = {e.asset_materialization.partition: e.asset_materialization.metadata
                  for e in instance.fetch_materializations(dg.AssetKey("label_audit"), limit=10).records}
    assert by_day["2026-11-25"]["labels_audited"].value == 0 and by_day["2026-11-25"]["suspects"].value == 0
    day_md = by_day[DAY]
    suspects = read_suspects(lake, DAY)
    precision, recall = precision_recall(suspects, bad)
    # A ~300-frame day with ~15 injected errors: a loose bound (one miss is 7 points of recall). The
    # issue's target (recall >= 90 % at precision >= 80 % on >= 2,000 frames) is bench_label --audit's.
    assert recall >= 0.6 and precision >= 0.6, (precision, recall, len(suspects), len(bad))
    assert [s["rank"] for s in suspects] == list(range(1, len(suspects) + 1))
    assert day_md["suspects"].value == len(suspects) and day_md["labels_audited"].value == len(fd.truth)
    assert 0 < day_md["estimated_label_error_rate"].value < 0.2
    assert "NN on" in day_md["model"].value  # scored by the out-of-fold model, not weak truth alone
    assert lake.get(merged_key(DAY)) == before  # the audit never changes a label
