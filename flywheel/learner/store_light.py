"""Store light for the two-stage model: training frames seen as a store camera would see them.

The bootstrap detector learns from the lab's manual collection only (bright, neutral light), and
found 0.6 / 30 / 29 % of the items of stores A / B / C (IoU >= 0.5 at confidence 0.25; the lab's
own 85 %). A store's camera differs in ways that need no store data to imitate: the light's colour
(one gain per channel), a dimmer exposure with crushed shadows (gamma), sensor noise and motion
blur. Each training frame is, with probability `p`, drawn under a random such camera (fresh every
epoch). The crop classifier's lab training frames (not the fleet's, already store frames) get the
same light (`store_light_sampler`, one draw per training) before their crop is gray-world
balanced, as on the device.
Nothing here reads a simulator parameter: the ranges are generic camera ranges.

ultralytics builds a detection dataset's augmentations itself, and rebuilds them when it closes
mosaic; `StoreLightDataset` adds the step to every build, `store_light_trainer` hands a
DetectionTrainer that uses it to `YOLO.train(trainer=...)`. Import this module only where a
model trains (it imports ultralytics).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from copy import copy
from typing import Any

import numpy as np
from ultralytics.data.dataset import YOLODataset
from ultralytics.models.yolo.detect import DetectionTrainer

GAINS = (0.55, 1.4)  # per-channel light colour (warm tungsten, cold tubes, magenta LEDs)
EXPOSURE = (0.35, 1.1)  # dim aisles to a slightly over-lit lab
GAMMA = (0.9, 1.8)  # > 1: shadows crushed, as dim sensors do
NOISE_SIGMA = (0.0, 14.0)  # grey levels, at the detector's input scale
BLUR_P = 0.5  # share of frames with a short linear motion blur


def store_light(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`img` (HxWx3 uint8, any channel order) under a random store camera's light and noise."""
    import cv2

    x = img.astype(np.float32) / 255.0 * rng.uniform(*GAINS, 3).astype(np.float32)
    x = np.clip(x * rng.uniform(*EXPOSURE), 0.0, 1.0) ** rng.uniform(*GAMMA)
    x = x * 255.0 + rng.normal(0.0, rng.uniform(*NOISE_SIGMA), x.shape).astype(np.float32)
    if rng.random() < BLUR_P:
        x = cv2.filter2D(x, -1, _motion_kernel(3, rng.uniform(0.0, np.pi)))
    return np.clip(x, 0, 255).astype(np.uint8)


def _motion_kernel(k: int, angle: float) -> np.ndarray:
    ker = np.zeros((k, k), np.float32)
    c = k // 2
    for t in np.linspace(-c, c, 2 * k):
        ker[int(round(c + t * np.sin(angle))), int(round(c + t * np.cos(angle)))] = 1.0
    return ker / ker.sum()


def check_probability(p: float, field: str) -> None:
    if not 0.0 <= p <= 1.0:  # also NaN: a typo in a config must not train silently without it
        raise ValueError(f"{field} must be a probability in [0, 1], got {p!r}")


def store_light_sampler(p: float, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """For the crop classifier's training frames: each frame under a random store light with
    probability `p` (seeded: the same dataset and seed give the same crops), else as it is."""
    check_probability(p, "cls_store_light")
    rng = np.random.default_rng([seed, 0x5707E])

    def light(img: np.ndarray) -> np.ndarray:
        return store_light(img, rng) if p > 0 and rng.random() < p else img

    return light


class StoreLight:
    """An ultralytics transform (labels dict in, labels dict out): the image under a random store
    light with probability `p`; boxes untouched. It draws from numpy's global state, as
    ultralytics' own augmentations draw from theirs: the trainer seeds it (`seed`,
    `deterministic`) and gives each loading worker its own stream."""

    def __init__(self, p: float) -> None:
        check_probability(p, "det_store_light")
        self.p = p

    def __call__(self, labels: dict[str, Any]) -> dict[str, Any]:
        if self.p > 0 and np.random.random() < self.p:
            rng = np.random.default_rng(np.random.randint(0, 2**31 - 1))
            labels["img"] = store_light(labels["img"], rng)
        return labels


class StoreLightDataset(YOLODataset):
    """YOLODataset whose training augmentations start with StoreLight (at every rebuild)."""

    store_light_p: float = 0.0

    def build_transforms(self, hyp=None):
        transforms = super().build_transforms(hyp)
        if self.augment and self.store_light_p > 0:
            transforms.insert(0, StoreLight(self.store_light_p))  # before letterbox, perspective, HSV
        return transforms


class StoreLightTrainer(DetectionTrainer):
    """DetectionTrainer whose training dataset is a StoreLightDataset with `store_light_p`."""

    def __init__(self, *args: Any, store_light_p: float = 0.0, **kwargs: Any) -> None:
        self.store_light_p = store_light_p
        super().__init__(*args, **kwargs)

    def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None):
        dataset = super().build_dataset(img_path, mode, batch)
        # only a plain YOLODataset is re-classed: a subclass (multi-modal, ...) would lose its own
        if mode == "train" and self.store_light_p > 0 and type(dataset) is YOLODataset:
            dataset.__class__ = StoreLightDataset
            dataset.store_light_p = self.store_light_p
            dataset.transforms = dataset.build_transforms(hyp=copy(self.args))
        return dataset


def store_light_trainer(p: float):
    """`YOLO.train(trainer=...)` for a detector whose training frames get StoreLight with `p`
    (checked here, before any training starts)."""
    StoreLight(p)
    return functools.partial(StoreLightTrainer, store_light_p=p)
