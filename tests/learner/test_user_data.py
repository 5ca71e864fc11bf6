"""The Learner on data a user brings (issue 13): hostile class names, sparse columns, set names."""

from __future__ import annotations

import json

import polars as pl
import pytest
import yaml

from flywheel.learner.config import DatasetSpec, TrainConfig
from flywheel.learner.datasets import build_members, write_dataset_version
from flywheel.learner.errors import DatasetError
from flywheel.learner.materialize import materialize_classify, materialize_detect
from flywheel.learner.train import TrainRequest, check_class_order, run_training
from tests.learner.fakes import SKUS, fake_frames

# "T-shirt/top" would nest inside "T-shirt" as folders; quotes and ".." break paths and YAML
HOSTILE = {SKUS[0]: "T-shirt/top", SKUS[1]: "T-shirt", SKUS[2]: "..'a: b'"}


def hostile_frames(**kw) -> pl.DataFrame:
    df = fake_frames(**kw)
    return df.with_columns(pl.col("sku").replace(HOSTILE))


def test_hostile_names_never_become_paths(tmp_path):
    members, _ = build_members(hostile_frames(empty_every=5, size=(96, 64)), DatasetSpec(),
                               set(HOSTILE.values()))
    classes = sorted(members["label"].unique().to_list())
    root = materialize_classify(members, classes, tmp_path / "cls", 32)
    assert sorted(p.name for p in (root / "train").iterdir()) == ["0000", "0001", "0002", "0003"]
    assert not list(tmp_path.glob("cls/*/T-shirt*"))
    n = {i: len(list((root / "train" / f"{i:04d}").iterdir())) for i in range(4)}
    want = members.filter(pl.col("split") == "train").group_by("label").len()
    assert n == {classes.index(r["label"]): r["len"] for r in want.iter_rows(named=True)}
    det, _ = build_members(hostile_frames(empty_every=5, size=(96, 64)), DatasetSpec(task="detect"),
                           set(HOSTILE.values()))
    data = yaml.safe_load(materialize_detect(det, classes, tmp_path / "det").read_text())
    assert list(data["names"].values()) == [c for c in classes if c != "empty"]


def test_class_order_mismatch_is_refused():
    classes = ["T-shirt", "T-shirt/top", "empty"]
    check_class_order({0: "0000", 1: "0001", 2: "0002"}, "classify", classes)
    with pytest.raises(DatasetError, match="trained class order"):
        check_class_order({0: "0001", 1: "0000", 2: "0002"}, "classify", classes)
    with pytest.raises(DatasetError, match="mislabel"):
        check_class_order({0: "T-shirt/top", 1: "T-shirt"}, "detect", classes)


@pytest.mark.slow
def test_training_on_hostile_names_keeps_the_card_order(local_lake):
    catalog = set(HOSTILE.values())
    ds, _ = write_dataset_version(local_lake, hostile_frames(n_sessions=5, frames_per_session=6),
                                  DatasetSpec(include_empty=False), catalog, ["fake"])
    cfg = TrainConfig(epochs=1, imgsz=32, batch=16, roi=None)  # no empty class: one stage
    result = run_training(TrainRequest(local_lake.uri, None, ds.version, cfg, "hostile",
                                       catalog=tuple(sorted(catalog))))
    assert result.card.classes == sorted(catalog) and result.onnx_validation["passed"]


def test_only_frame_id_sku_and_image_are_required():
    from flywheel.learner.labelled_frames import normalise

    full = fake_frames(empty_every=4)
    sparse = normalise(full.select("frame_id", "sku", "image_png"))
    assert sparse["session_id"].to_list() == sparse["frame_id"].to_list()
    assert sparse["is_empty"].to_list() == full["is_empty"].to_list()
    members, _ = build_members(sparse, DatasetSpec(), set(SKUS))
    assert members.height == full.height and members["split"].n_unique() == 2
    with pytest.raises(ValueError, match=r"lacks columns \['sku'\]"):
        normalise(full.select("frame_id", "image_png"))


def test_same_image_under_a_new_id_is_a_leak(local_lake):
    from flywheel.learner import reference_sets
    from flywheel.learner.pipeline import build_dataset
    from tests.learner.fakes import to_parquet

    train = fake_frames(n_sessions=4, seed=1)
    test = fake_frames(n_sessions=2, seed=2, id_prefix="t")
    reference_sets.import_catalog(local_lake, json.dumps({"products": [{"ean": s} for s in SKUS]}))
    reference_sets.import_standard_set(local_lake, "shelf", to_parquet(test))
    copied = test.head(2).with_columns(pl.lit("new-id").alias("session_id"),
                                       (pl.lit("copy-") + pl.col("frame_id")).alias("frame_id"))
    reference_sets.import_manual_collection(local_lake, to_parquet(pl.concat([train, copied])))
    with pytest.raises(DatasetError, match=r"byte-identical to frozen .* \({'shelf': 2}\)"):
        build_dataset(local_lake, DatasetSpec())
    reference_sets.import_manual_collection(local_lake, to_parquet(train))
    assert build_dataset(local_lake, DatasetSpec())[0].manifest["counts"]["members"] == train.height


def test_one_session_per_class_fails_train_coverage_loudly(tmp_path):
    from edge_agent.lake import Lake
    from tests.learner.test_learner_defs import _materialize_dataset, _seed_lake

    frames = pl.concat([fake_frames(1, 4, skus=(SKUS[0],), seed=1, id_prefix="a"),
                        fake_frames(1, 4, skus=(SKUS[1],), seed=2, id_prefix="b")])
    _seed_lake(Lake.at_path(tmp_path), frames)
    result = _materialize_dataset(tmp_path)
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    train = checks["train_class_coverage"]
    assert not train.passed and train.metadata["actual"].value == 1
    assert train.metadata["threshold"].value == 0 and len(train.metadata["missing"].value) == 1
