"""Two `train_and_evaluate` runs with different configs, overlapping on one lake (real SeaweedFS,
real Ray, real Dagster): each trains on its own dataset version, evaluates its own candidate and the
gate judges (and names) that candidate. The runs are forced to interleave step by step."""

from __future__ import annotations

import threading

import dagster as dg
import pytest

from tests.learner.fakes import label_days_source
from tests.support.lineage import BARRIERS, LockstepRefIOManager

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.e2e]  # ~155 s: make test-e2e

# different split and seed: different dataset versions and different candidates. One stage: two
# overlapping two-stage trainings outlived the 600 s timeout on the loaded machine (the two-stage
# model's lineage: tests/learner/test_two_stage_learner.py, test_two_stage_turns.py)
RUNS = {
    "a": {"dataset_version": {"config": {"val_fraction": 0.2}},
          "candidate_model": {"config": {"epochs": 1, "batch": 32, "seed": 1, "num_cpus": 1,
                                             "two_stage": False}}},
    "b": {"dataset_version": {"config": {"val_fraction": 0.35}},
          "candidate_model": {"config": {"epochs": 1, "batch": 32, "seed": 2, "num_cpus": 1,
                                             "two_stage": False}}},
}
SELECTION = ["dataset_version", "candidate_model", "candidate_evaluation"]


def _metadata(result, key: str) -> dict:
    [mat] = [e.materialization for e in result.get_asset_materialization_events()
             if e.materialization.asset_key.to_user_string() == key]
    return {k: v.value for k, v in mat.metadata.items()}


def test_overlapping_runs_each_gate_their_own_candidate(seaweed, ray_cluster):
    import assets.learner as la
    from flywheel.learner import registry
    from flywheel.learner.pipeline import SimSources, import_from_simulator
    from jobs.learner import train_and_evaluate
    from resources.lake import S3LakeResource
    from resources.ray import LocalRayCluster

    lake_res = S3LakeResource(uri=f"s3://{seaweed.bucket}/lineage", endpoint=seaweed.endpoint,
                              access_key_id=seaweed.access_key, secret_access_key=seaweed.secret_key)
    lake = lake_res.lake()
    import_from_simulator(lake, SimSources(seed=0, n_per_sku=6, n_test=40))
    BARRIERS["lineage"] = threading.Barrier(len(RUNS))
    defs = dg.Definitions(
        assets=[la.learner_sources, la.dataset_version, la.candidate_model, la.candidate_evaluation,
                label_days_source()],
        asset_checks=[la.release_gate], jobs=[train_and_evaluate],
        resources={"lake": lake_res, "ray": LocalRayCluster(num_cpus=2),
                   "ref_io_manager": LockstepRefIOManager(lake=lake_res, barrier="lineage")})
    job = defs.resolve_job_def("train_and_evaluate")
    results: dict = {}

    def run(name: str) -> None:
        try:
            results[name] = job.execute_in_process(
                run_config={"ops": RUNS[name]}, instance=dg.DagsterInstance.ephemeral(),
                asset_selection=[dg.AssetKey(k) for k in SELECTION], raise_on_error=False)
        except BaseException as exc:  # noqa: BLE001 - reported below, never swallowed
            results[name] = exc
            BARRIERS["lineage"].abort()

    threads = [threading.Thread(target=run, args=(n,)) for n in RUNS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=1200)
    assert set(results) == set(RUNS) and all(isinstance(r, dg.ExecuteInProcessResult)
                                             for r in results.values()), results
    seen = {}
    for name, result in results.items():
        assert result.success, name
        ds, model = _metadata(result, "dataset_version"), _metadata(result, "candidate_model")
        ev = _metadata(result, "candidate_evaluation")
        [gate] = [c for c in result.get_asset_check_evaluations() if c.check_name == "release_gate"]
        gate_meta = {k: v.value for k, v in gate.metadata.items()}
        # every step of this run worked on what this run made before it
        assert model["dataset_version"] == ds["version"]
        assert ev["candidate"] == model["model_id"] == gate_meta["candidate"]
        assert registry.read_card(lake, model["model_id"]).lineage.dataset_version == ds["version"]
        assert registry.read_gate(lake, model["model_id"]).candidate_id == model["model_id"]
        seen[name] = (ds["version"], model["model_id"])
    assert seen["a"][0] != seen["b"][0] and seen["a"][1] != seen["b"][1]
    assert not lake.exists("depot/learner/latest_dataset.json")  # no pointers any more
    assert not lake.exists("depot/learner/latest_candidate.json")
