"""The two-stage Learner's parts without training: background crops for the empty class, which
classifier frames get store light, the card
-> device card (detector named with its sha256), the registry's slot install, and the refusal of a
dataset a two-stage model cannot learn P(empty) from."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from edge_agent.contract.schemas import parse_device_model
from flywheel.learner import registry
from flywheel.learner.config import DatasetSpec, RoiConfig, TrainConfig
from flywheel.learner.documents import CardLineage, ModelCardV1, OnnxValidation
from flywheel.learner.errors import DatasetError, RegistryError
from flywheel.learner.materialize import materialize_classify
from flywheel.learner.training_io import device_model
from flywheel.learner.two_stage import background_boxes, lab_frame, preprocessing_doc
from tests.learner.fakes import SKUS, fake_frames
from tests.support.ota import two_stage_release_files
from tests.support.registry import register_model

CFG = TrainConfig(roi=RoiConfig(crop=48, det_imgsz=96, margin=1.5, empty_rule="gate",
                                min_confidence=0.2))


def test_empty_class_crops_at_training_items_boxes() -> None:
    frames = fake_frames(n_sessions=2, empty_every=3).with_columns(
        pl.when(pl.col("is_empty")).then(pl.lit("empty")).otherwise(pl.col("sku")).alias("label"))
    boxes = background_boxes(frames, "item_box", Path("unused.onnx"), (64, 64), seed=0)
    empty_ids = frames.filter(pl.col("label") == "empty")["frame_id"].to_list()
    assert sorted(boxes) == sorted(empty_ids) and len(boxes) == 4
    item_boxes = [list(b) for b in frames.filter(pl.col("label") != "empty")["item_box"].to_list()]
    assert all(list(b) in item_boxes for b in boxes.values())
    assert boxes == background_boxes(frames, "item_box", Path("unused.onnx"), (64, 64), seed=0)


def test_store_light_lights_lab_frames_not_the_fleets(tmp_path: Path) -> None:
    """The crop function sees each frame's distribution: fleet frames ("production") are store
    frames already and are not lit again; the lab's and a user's own are."""
    frames = fake_frames(n_sessions=2).with_columns(
        pl.col("sku").alias("label"), pl.lit("train").alias("split"),
        pl.when(pl.int_range(pl.len()) % 2 == 0).then(pl.lit("production")).otherwise(pl.lit("manual"))
        .alias("distribution"))
    seen: dict[str, bool] = {}

    def crop(rgb, row):
        seen[row["frame_id"]] = lab_frame(row)
        return rgb[:8, :8]

    materialize_classify(frames, sorted(set(frames["label"])), tmp_path / "d", 8, image_fn=crop)
    expected = dict(zip(frames["frame_id"], (frames["distribution"] != "production"), strict=True))
    assert seen == expected and any(seen.values()) and not all(seen.values())
    assert lab_frame({"frame_id": "x"})  # no distribution column (a user's own dataset): lab


def _card(files: dict[str, bytes]) -> ModelCardV1:
    return ModelCardV1(
        model_id="cls-two", task="classify", architecture="yolov8n.yaml -> yolov8n-cls.yaml",
        classes=["empty", *SKUS], empty_class="empty", imgsz=48, preprocessing=preprocessing_doc(CFG),
        files={n: {"key": registry.key("cls-two", n), "bytes": len(d),
                   "sha256": hashlib.sha256(d).hexdigest()} for n, d in files.items()},
        lineage=CardLineage(dataset_version="ds", code_version="t", parent_model=None, train_config={}),
        training={}, onnx_validation=OnnxValidation(passed=True), created_at=datetime.now(UTC))


def test_device_card_names_the_detector_with_its_hash_and_the_recipe() -> None:
    card = _card({"model.onnx": b"m", "detector.onnx": b"d"})
    doc = device_model(card)
    assert doc.input_size == [48, 48] and doc.white_balance == CFG.white_balance
    det = doc.detector
    assert (det.file, det.sha256, det.input_size) == ("detector.onnx", hashlib.sha256(b"d").hexdigest(),
                                                      [96, 96])
    assert (det.crop_margin, det.empty_rule, det.min_confidence) == (1.5, "gate", 0.2)
    assert card.preprocessing["two_stage"]["combine"] == "edge_agent.crop.combine"  # the card says how
    # a model derived from a two-stage one (e.g. a new head) without the detector file: refused
    with pytest.raises(RegistryError, match="without its detector.onnx"):
        device_model(_card({"model.onnx": b"m"}))
    # one-stage cards are unchanged
    one = card.model_copy(update={"preprocessing": {k: v for k, v in card.preprocessing.items()
                                                    if k != "two_stage"}})
    assert device_model(one).detector is None


def test_registry_installs_both_files_in_a_slot(local_lake, tmp_path: Path) -> None:
    from edge_agent.model import DeviceModel

    files = two_stage_release_files(2, "cls-two")
    doc = parse_device_model(files["model.json"]).model_copy(update={"model_version": "cls-two"})
    register_model(local_lake, "cls-two", {"model.onnx": files["model.onnx"],
                                           "detector.onnx": files["detector.onnx"]},
                   classes=doc.labels, device=doc)
    slot = registry.write_slot(local_lake, "cls-two", tmp_path / "slot")
    assert sorted(p.name for p in slot.iterdir()) == ["detector.onnx", "model.json", "model.onnx"]
    assert DeviceModel(slot).detector is not None
    # a registry file that is not what the card recorded never reaches a slot
    local_lake.put(registry.key("cls-two", "detector.onnx"), b"tampered")
    with pytest.raises(RegistryError, match="detector.onnx does not match"):
        registry.write_slot(local_lake, "cls-two", tmp_path / "slot2")


def test_two_stage_needs_an_empty_class(local_lake) -> None:
    from flywheel.learner.datasets import write_dataset_version
    from flywheel.learner.train import TrainRequest, run_training

    frames = fake_frames(n_sessions=6, frames_per_session=6)  # no empty frames
    ds, _ = write_dataset_version(local_lake, frames, DatasetSpec(), set(SKUS), ["fake"])
    with pytest.raises(DatasetError, match="needs a classify dataset with the 'empty' class"):
        run_training(TrainRequest(local_lake.uri, None, ds.version, CFG, "cls-x", catalog=tuple(SKUS)))


def test_the_default_falls_back_to_one_stage_without_an_empty_class() -> None:
    from flywheel.learner.two_stage import fit_config

    default = TrainConfig()
    assert default.roi is not None  # the job's default model is the two-stage one
    assert fit_config(default, ["empty", *SKUS]) is default
    assert fit_config(default, list(SKUS)) == TrainConfig(roi=None)  # a user's photos: no empty, no boxes
    assert fit_config(TrainConfig(roi=None), ["empty", *SKUS]).roi is None  # one stage by config stays
