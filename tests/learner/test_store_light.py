"""Store light for the two-stage model: a random store camera's light, exposure, noise and blur on
a share of the training frames (the detector's fresh every epoch, kept when ultralytics rebuilds its
augmentations; the crop classifier's once per training, seeded)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from flywheel.learner.store_light import (
    StoreLight,
    store_light,
    store_light_sampler,
    store_light_trainer,
)


def _frame() -> np.ndarray:
    rng = np.random.default_rng(1)
    img = np.full((72, 96, 3), 200, np.uint8)
    img[20:50, 30:60] = rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)  # a package
    return img


def test_store_light_changes_the_light_and_keeps_the_frame():
    img = _frame()
    rng = np.random.default_rng(0)
    looks = [store_light(img, rng) for _ in range(20)]
    assert all(x.shape == img.shape and x.dtype == np.uint8 for x in looks)
    means = np.array([x.reshape(-1, 3).mean(axis=0) for x in looks])
    assert means.std(axis=0).min() > 10  # every channel's level varies from camera to camera
    # the channels move apart: a coloured light, not only a brightness change
    ratios = means[:, 0] / np.maximum(means[:, 2], 1)
    assert ratios.max() / ratios.min() > 1.5
    assert (means.mean(axis=1) < img.mean()).mean() > 0.5  # mostly dimmer than the lab
    # same seed, same camera
    same = [store_light(img, np.random.default_rng(3)) for _ in range(2)]
    assert np.array_equal(*same)


def test_the_transform_applies_with_its_probability_and_leaves_boxes_alone():
    img = _frame()
    boxes = np.array([[30.0, 20.0, 60.0, 50.0]])
    never, always = StoreLight(0.0), StoreLight(1.0)
    np.random.seed(0)
    out = never({"img": img.copy(), "boxes": boxes.copy()})
    assert np.array_equal(out["img"], img) and np.array_equal(out["boxes"], boxes)
    out = always({"img": img.copy(), "boxes": boxes.copy()})
    assert not np.array_equal(out["img"], img) and np.array_equal(out["boxes"], boxes)
    half = StoreLight(0.5)
    changed = sum(not np.array_equal(half({"img": img.copy()})["img"], img) for _ in range(200))
    assert 70 < changed < 130
    # seeded as ultralytics seeds its workers: the same draws again
    runs = []
    for _ in range(2):
        np.random.seed(7)
        runs.append(np.stack([half({"img": img.copy()})["img"] for _ in range(10)]))
    assert np.array_equal(*runs)


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan")])
def test_a_probability_outside_0_1_is_refused_before_training(p):
    with pytest.raises(ValueError, match="det_store_light must be a probability"):
        store_light_trainer(p)


def test_the_classifier_sampler_lights_its_share_of_frames_the_same_for_a_seed():
    img = _frame()

    def lit(p: float, seed: int) -> list[bool]:
        light = store_light_sampler(p, seed)
        return [not np.array_equal(light(img), img) for _ in range(200)]

    assert not any(lit(0.0, 0)) and all(lit(1.0, 0))
    assert 70 < sum(lit(0.5, 0)) < 130
    assert lit(0.5, 3) == lit(0.5, 3) and lit(0.5, 3) != lit(0.5, 4)
    a, b = store_light_sampler(1.0, 5), store_light_sampler(1.0, 5)
    assert np.array_equal(a(img), b(img))  # the same dataset and seed: the same crops
    with pytest.raises(ValueError, match="cls_store_light must be a probability"):
        store_light_sampler(float("nan"), 0)


@pytest.mark.slow
def test_a_detector_trains_with_store_light_in_every_epoch(local_lake, tmp_path):
    """A real ultralytics detection training through the trainer the Learner uses: the training
    dataset starts its augmentations with StoreLight in every epoch, also after ultralytics closes
    mosaic and rebuilds them; validation sees the frames as they are."""
    from ultralytics import YOLO

    from flywheel.learner import yolo_env
    from flywheel.learner.pipeline import SimSources, import_from_simulator
    from flywheel.learner.reference_sets import read_manual_collection
    from flywheel.learner.store_light import StoreLightDataset, store_light_trainer
    from flywheel.learner.two_stage import detector_data

    yolo_env.configure()
    import_from_simulator(local_lake, SimSources(seed=0, n_per_sku=2, n_test=4, n_insertions=0))
    _, frames = read_manual_collection(local_lake)
    frames = frames.with_columns(
        pl.when(pl.col("sku").is_null()).then(pl.lit("empty")).otherwise(pl.col("sku")).alias("label"),
        pl.when(pl.int_range(pl.len()) % 5 == 0).then(pl.lit("val")).otherwise(pl.lit("train"))
        .alias("split"))
    data = detector_data(frames, tmp_path)
    seen: list[tuple[str, bool, float]] = []
    built: list[int] = []

    def record(trainer) -> None:
        ds = trainer.train_loader.dataset
        seen.append((type(ds).__name__, isinstance(ds.transforms.transforms[0], StoreLight),
                     ds.store_light_p))
        built.append(id(ds.transforms))

    model = YOLO("yolov8n.yaml", task="detect")
    model.add_callback("on_train_epoch_end", record)  # after a rebuild
    model.train(data=str(data), epochs=2, close_mosaic=1, imgsz=64, batch=16, workers=0, device="cpu",
                pretrained=False, plots=False, verbose=False, project=str(tmp_path / "runs"), name="det",
                trainer=store_light_trainer(0.5))
    # epoch 2 ran on the transforms ultralytics rebuilt when it closed mosaic
    assert seen == [("StoreLightDataset", True, 0.5)] * 2 and built[0] != built[1]
    val = model.trainer.validator.dataloader.dataset
    assert not isinstance(val, StoreLightDataset)
    assert not any(isinstance(t, StoreLight) for t in val.transforms.transforms)
