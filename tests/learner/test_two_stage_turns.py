"""A turn whose parent is a two-stage model: its detector ships again byte for byte when the turn
has no new boxes (or fewer than `det_refresh_min_new_boxes`), is fine-tuned from the parent's
weights `det_refresh_epochs` when it has that many, and the crop classifier fine-tunes from the
parent's (warm_start, head grown by class name). On 2 CPUs with `empty_crops="item_box"` the
detector trains in a spawned process while the classifier trains in the task's."""

from __future__ import annotations

import polars as pl
import pytest

from flywheel.learner import registry
from flywheel.learner.config import DatasetSpec, RoiConfig, TrainConfig

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TINY = TrainConfig(epochs=1, batch=32, num_cpus=2,
                   roi=RoiConfig(crop=32, det_imgsz=64, det_epochs=1, det_refresh_epochs=1,
                                 det_refresh_min_new_boxes=1))


def test_child_reuses_or_fine_tunes_the_parents_detector(local_lake, tmp_path):
    from dataclasses import replace

    from flywheel.learner.datasets import read_members, write_dataset_version
    from flywheel.learner.pipeline import SimSources, import_from_simulator
    from flywheel.learner.reference_sets import catalog_skus, read_manual_collection
    from flywheel.learner.train import TrainRequest, run_training
    from flywheel.learner.warm_start import prepare_detector

    lake = local_lake
    import_from_simulator(lake, SimSources(seed=0, n_per_sku=6, n_test=8, n_insertions=0))
    catalog = catalog_skus(lake)
    _, frames = read_manual_collection(lake)
    sessions = sorted(frames["session_id"].unique().to_list())
    old_frames = frames.filter(pl.col("session_id").is_in(sessions[: len(sessions) * 3 // 4]))
    old, _ = write_dataset_version(lake, old_frames, DatasetSpec(), catalog, ["old"])
    # the new quarter comes from the fleet: its empties are store empties, which a refresh also
    # sees with lab items pasted in (copy_paste.py)
    fleet_quarter = pl.col("session_id").is_in(sessions[len(sessions) * 3 // 4:])
    new, _ = write_dataset_version(lake, frames.with_columns(
        pl.when(fleet_quarter).then(pl.lit("production")).otherwise(pl.col("distribution"))
        .alias("distribution")), DatasetSpec(), catalog, ["all"])

    def train(version: str, model_id: str, parent: str | None = None):
        return run_training(TrainRequest(lake.uri, None, version, TINY, model_id,
                                         parent_model_id=parent, catalog=tuple(sorted(catalog))))

    parent = train(old.version, "parent")
    assert parent.card.training["detector"]["init"]["mode"] == "scratch"
    # Label asks for a box where this detector, run as the device runs it, misses the item
    import io

    from PIL import Image

    from flywheel.label.box_requests import box_confidence

    def jpeg(png: bytes) -> bytes:
        out = io.BytesIO()
        Image.open(io.BytesIO(png)).convert("RGB").save(out, "JPEG")
        return out.getvalue()

    some = frames.head(4)
    leaders = {f: jpeg(p) for f, p in zip(some["frame_id"], some["image_png"], strict=True)}
    leaders["torn"] = leaders[some["frame_id"][0]][:100]  # a truncated JPEG: skipped, not fatal
    seen = box_confidence(lake, "parent", leaders, tmp_path / "boxes")
    assert seen is not None
    conf, threshold = seen
    assert set(conf) == set(some["frame_id"]) and all(0.0 <= c <= 1.0 for c in conf.values())
    assert threshold == TINY.roi.min_confidence
    assert parent.card.training["init"]["mode"] == "scratch"
    same = train(old.version, "same", "parent")  # no box the parent has not trained on
    grown = train(new.version, "grown", "parent")  # a quarter of the sessions are new

    det = same.card.training["detector"]
    assert det["init"] == {"mode": "reused", "parent": "parent", "new_boxes": 0, "reason": "no new boxes"}
    assert det["epochs"] == 0 and det["seconds_train"] == 0.0
    for name in ("detector.onnx", "detector.pt"):  # the parent's file is what this model ships
        assert same.card.files[name].sha256 == parent.card.files[name].sha256
    device = registry.read_device_model(lake, "same")
    assert device.detector.sha256 == parent.card.files["detector.onnx"].sha256
    assert same.onnx_validation["passed"], same.onnx_validation  # golden-checked all the same

    det = grown.card.training["detector"]
    n_new = new.manifest["counts"]["members"] - old.manifest["counts"]["members"]
    assert det["init"]["mode"] == "fine-tuned" and 0 < det["init"]["new_boxes"] <= n_new
    assert det["store_light"] == 0.5  # a refresh trains under store light too
    store_empties = read_members(lake, new, None, with_images=False).filter(
        (pl.col("label") == "empty") & (pl.col("distribution") == "production")
        & (pl.col("split") == "train")).height
    assert store_empties > 0 and det["pasted_items"] == round(TINY.roi.det_paste_items * store_empties)
    assert det["epochs"] == TINY.roi.det_refresh_epochs
    assert grown.card.files["detector.onnx"].sha256 != parent.card.files["detector.onnx"].sha256
    for run in (parent, grown):  # trained beside the classifier, in its own process
        assert "detector_wait" in run.card.training["phases"], run.card.training["phases"]
    assert "detector_wait" not in same.card.training["phases"]

    # fewer new boxes than the minimum: the parent's detector ships unchanged
    boxed = read_members(lake, new, None, with_images=False).filter(
        pl.col("item_box").is_not_null())["frame_id"].to_list()
    n = det["init"]["new_boxes"]
    for minimum, mode in ((n, "fine-tuned"), (n + 1, "reused")):
        cfg = replace(TINY, roi=replace(TINY.roi, det_refresh_min_new_boxes=minimum))
        start = prepare_detector(lake, "parent", cfg, boxed, tmp_path / f"min{minimum}")
        assert (start.mode, start.new_boxes) == (mode, n)
    assert start.reason == f"{n} new boxes < det_refresh_min_new_boxes={n + 1}"
    assert start.onnx is not None and start.onnx.read_bytes() == lake.get(
        registry.key("parent", "detector.onnx"))
    # a reused detector was trained on its parent's dataset: a child of a model that reused it on
    # the grown dataset still counts the grown dataset's boxes as new (boxes drawn a turn add up)
    card = registry.read_card(lake, "same")
    relay = card.model_copy(update={"model_id": "relay", "lineage": card.lineage.model_copy(
        update={"dataset_version": new.version})})
    for name in (registry.DETECTOR_WEIGHTS, registry.DETECTOR_FILE):
        lake.put(registry.key("relay", name), lake.get(registry.key("same", name)))
    registry.write_card(lake, relay)
    start = prepare_detector(lake, "relay", replace(TINY, roi=replace(TINY.roi, det_refresh_min_new_boxes=n)),
                             boxed, tmp_path / "relay")
    assert (start.mode, start.new_boxes) == ("fine-tuned", n)
    for child in (same, grown):  # the crop classifier: fine-tuned from the parent's
        init = child.card.training["init"]
        assert init["mode"] == "parent" and init["parent"] == "parent"
        assert init["copied_classes"] == len(child.classes) - len(init["new_classes"]) > 0

    # fleet labels name the product without a box: the crop classifier gets the parent detector's
    # box where the parent trusts it; the detector does not learn from those (nothing new: reused)
    new_sessions = set(sessions[len(sessions) * 3 // 4:])
    unboxed = frames.with_columns(pl.when(pl.col("session_id").is_in(new_sessions))
                                  .then(pl.lit(None)).otherwise(pl.col("item_box")).alias("item_box"))
    fleet, _ = write_dataset_version(lake, unboxed, DatasetSpec(), catalog, ["fleet"])
    members = read_members(lake, fleet, None)
    n_unboxed = members.filter((pl.col("label") != "empty") & pl.col("item_box").is_null()).height
    assert n_unboxed > 0
    trusting = replace(TINY, roi=replace(TINY.roi, min_confidence=0.0))
    child = run_training(TrainRequest(lake.uri, None, fleet.version, trusting, "fleet",
                                      parent_model_id="parent", catalog=tuple(sorted(catalog))))
    training = child.card.training
    assert training["item_frames_boxed_by_parent"] == n_unboxed
    assert training["item_frames_without_box"] == 0
    assert training["n_train"] + training["n_val"] == members.height
    assert training["detector"]["init"]["reason"] == "no new boxes"

    from flywheel.learner.two_stage import box_unboxed

    todo = members.filter((pl.col("label") != "empty") & pl.col("item_box").is_null())
    boxed, left = box_unboxed(lake, "parent", todo, 0.0, tmp_path / "boxes")
    assert (boxed.height, left.height) == (n_unboxed, 0)
    assert all(len(b) == 4 and 0 <= b[0] <= b[2] and 0 <= b[1] <= b[3] for b in boxed["item_box"])
    boxed, left = box_unboxed(lake, "parent", todo, 1.01, tmp_path / "boxes")  # no score reaches it
    assert (boxed.height, left.height) == (0, n_unboxed)
    assert box_unboxed(lake, None, todo, 0.0, tmp_path / "boxes")[1].height == n_unboxed
