"""End to end on the user's path (issue 13), on small real photos made here: an empty SeaweedFS
lake -> `flywheel catalog import` -> `flywheel import` (training photos, a frozen test set) ->
the `train_and_evaluate` job with `source: imported` on the session's Ray -> evaluation on the
user's set -> blocking gate -> registered model. Classify (ImageFolder) and detect (YOLO)."""

from __future__ import annotations

import dagster as dg
import pytest

from flywheel.cli import main
from flywheel.learner import reference_sets, registry
from flywheel.sim import photos
from tests.learner.fakes import label_days_source

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CLASSES = ["T-shirt/top", "cola 'zero'", "chips"]  # catalog ids as a user writes them


def _run_job(seaweed, prefix: str, run_config: dict):
    import assets.learner as la
    from jobs.learner import train_and_evaluate
    from resources.lake import S3LakeResource
    from resources.lineage import LakeRefIOManager
    from resources.ray import LocalRayCluster

    lake_res = S3LakeResource(uri=f"s3://{seaweed.bucket}/{prefix}", endpoint=seaweed.endpoint,
                              access_key_id=seaweed.access_key, secret_access_key=seaweed.secret_key)
    defs = dg.Definitions(
        assets=[la.learner_sources, la.dataset_version, la.candidate_model, la.candidate_evaluation,
                label_days_source()],  # no Label stage here: no labelled days
        asset_checks=[la.release_gate], jobs=[train_and_evaluate],
        resources={"lake": lake_res, "ref_io_manager": LakeRefIOManager(lake=lake_res),
                   "ray": LocalRayCluster(num_cpus=2)})
    result = defs.resolve_job_def("train_and_evaluate").execute_in_process(
        run_config=run_config, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    return result, lake_res.lake()


def _mat(result, key: str) -> dict:
    (m,) = [e.materialization for e in result.get_asset_materialization_events()
            if e.materialization.asset_key.to_user_string() == key]
    return {k: v.value for k, v in m.metadata.items()}


def _gate(result):
    (gate,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "release_gate"]
    return gate, {k: v.value for k, v in gate.metadata.items()}


def _cli(*args: str) -> None:
    assert main(list(args)) == 0, args


def _config(task: str, epochs: int, batch: int = 16) -> dict:
    return {"ops": {"learner_sources": {"config": {"source": "imported"}},
                    "dataset_version": {"config": {"task": task}},
                    "candidate_model": {"config": {"task": task, "epochs": epochs, "batch": batch}},
                    "candidate_evaluation": {"config": {"gate_sets": ["shelf"]}}}}


def _s3_env(monkeypatch, seaweed):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweed.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweed.secret_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", seaweed.endpoint)


def test_classify_from_an_empty_lake(seaweed, ray_cluster, tmp_path, monkeypatch):
    from flywheel.depot.cli import lake_from

    _s3_env(monkeypatch, seaweed)
    uri = f"s3://{seaweed.bucket}/byod-classify"
    photos.catalog_csv(tmp_path / "catalog.csv", CLASSES)
    (tmp_path / "map.csv").write_text("class,id\nT-shirt_top,T-shirt/top\n"
                                      "cola 'zero',cola 'zero'\nchips,chips\n")
    photos.write_imagefolder(tmp_path / "photos", photos.dataset(CLASSES, 30, seed=1))
    photos.write_imagefolder(tmp_path / "test", photos.dataset(CLASSES, 10, seed=2))
    _cli("catalog", "import", str(tmp_path / "catalog.csv"), "--lake", uri)
    _cli("import", str(tmp_path / "photos"), "--mapping", str(tmp_path / "map.csv"), "--lake", uri)
    _cli("import", str(tmp_path / "test"), "--as-standard-set", "shelf",
         "--mapping", str(tmp_path / "map.csv"), "--lake", uri)
    assert reference_sets.standard_set_names(lake_from(uri)) == ["shelf"]

    result, lake = _run_job(seaweed, "byod-classify", _config("classify", 20))
    assert result.success
    assert reference_sets.standard_set_names(lake) == ["shelf"]  # no simulator sets were added
    assert reference_sets.catalog_skus(lake) == set(CLASSES)  # and the catalog is still the user's
    ds = _mat(result, "dataset_version")
    assert ds["members"] == 90 and ds["classes"] == 3 and ds["train"] > ds["val"] > 0
    model = _mat(result, "candidate_model")
    card = registry.read_card(lake, model["model_id"])
    assert card.classes == sorted(CLASSES) and model["onnx_agrees"] is True
    ev = _mat(result, "candidate_evaluation")
    assert ev["gate_sets"] == ["shelf"] and list(ev["test_set_versions"]) == ["shelf"]
    assert ev["production_top1"] > 0.6  # 3 classes: chance is 0.33
    gate, meta = _gate(result)
    assert gate.passed and meta["actual"] == pytest.approx(ev["production_top1"], abs=1e-4)
    print(f"BYOD classify: production_top1 {ev['production_top1']:.3f} on 30 held-out photos")


def test_simulator_never_overwrites_an_imported_catalog(seaweed, ray_cluster, tmp_path, monkeypatch):
    from flywheel.depot.cli import lake_from

    _s3_env(monkeypatch, seaweed)
    uri = f"s3://{seaweed.bucket}/byod-guard"
    _cli("catalog", "import", str(photos.catalog_csv(tmp_path / "catalog.csv", CLASSES)), "--lake", uri)
    result, lake = _run_job(seaweed, "byod-guard", {})
    assert not result.success
    assert reference_sets.catalog_skus(lake_from(uri)) == set(CLASSES)
    assert reference_sets.standard_set_names(lake) == []


def test_detect_from_yolo_export(seaweed, ray_cluster, tmp_path, monkeypatch):
    _s3_env(monkeypatch, seaweed)
    uri = f"s3://{seaweed.bucket}/byod-detect"
    _cli("catalog", "import", str(photos.catalog_csv(tmp_path / "catalog.csv", CLASSES)), "--lake", uri)
    shots = photos.dataset(CLASSES, 16, seed=3)
    yaml = photos.write_yolo_detect(tmp_path / "yolo", {"train": shots[::2], "val": shots[1::2]}, CLASSES)
    _cli("import", str(yaml), "--lake", uri)
    # baskets with 2-3 products each, as COCO: every box imports and trains
    _cli("import", str(photos.write_coco(tmp_path / "baskets", photos.scenes(CLASSES, 12, seed=5))),
         "--lake", uri)
    test = photos.write_yolo_detect(tmp_path / "yolo-test", {"test": photos.dataset(CLASSES, 6, seed=4)},
                                    CLASSES)
    _cli("import", str(test), "--as-standard-set", "shelf", "--lake", uri)

    result, lake = _run_job(seaweed, "byod-detect", _config("detect", 15, batch=8))
    assert result.success
    ds = _mat(result, "dataset_version")
    assert ds["members"] == 48 + 12 and ds["classes"] == 3
    card = registry.read_card(lake, _mat(result, "candidate_model")["model_id"])
    assert card.task == "detect" and card.classes == sorted(CLASSES)
    ev = _mat(result, "candidate_evaluation")
    assert ev["gate_sets"] == ["shelf"]
    # it learns: box mAP@0.5 on 18 held-out photos clearly above 0 (0.000 with ultralytics'
    # accumulate-to-64 and warmup defaults on this little data; see TrainConfig.for_task)
    assert ev["production_map50"] > 0.1, ev["production_map50"]
    gate, meta = _gate(result)
    assert gate.passed and meta["actual"] == pytest.approx(ev["production_map50"], abs=1e-4)
    print(f"BYOD detect: production_map50 {ev['production_map50']:.3f} after 15 epochs")
