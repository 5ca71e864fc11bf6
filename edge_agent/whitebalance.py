"""White balance: undo a store's light colour before the model sees a frame.

A store's light (warm tungsten, cold tubes, magenta LEDs) and the camera's exposure act on a frame
as one gain per colour channel (and a shared tone curve), so dividing each channel by its mean over
the frame (gray world) and scaling to a fixed mean brightness removes them almost exactly: the
basket and its background fill most of the frame and average to grey. Training, evaluation, the
golden inputs and the device apply this one function (the Learner imports it from here: the edge
agent never imports the cloud side), so they see identical pixels.

Methods (the model card's `white_balance`, the device's `DeviceModelV1.white_balance`):
- "none": pixels unchanged;
- "gray_world": per-channel gains to a common mean, overall brightness kept;
- "gray_world_exposure": the same, then scaled so the frame's mean is `EXPOSURE_TARGET` (dim
  stores look like bright ones).
"""

from __future__ import annotations

import numpy as np

METHODS = ("none", "gray_world", "gray_world_exposure")
EXPOSURE_TARGET = 110.0  # mean pixel value (0..255) after exposure normalisation
MAX_GAIN = 4.0  # a near-black channel (a lens cap, a dark frame) is not blown up past this
_STEP = 4  # statistics on every 4th pixel per axis: 1/16 of the work, the same means


def gains(rgb: np.ndarray, method: str) -> np.ndarray:
    """Per-channel gains (3,) float32 that `apply_gains` multiplies `rgb`-like pixels by."""
    if method not in METHODS:
        raise ValueError(f"white balance {method!r}: expected one of {METHODS}")
    if method == "none":
        return np.ones(3, np.float32)
    sample = rgb[::_STEP, ::_STEP].reshape(-1, 3).astype(np.float32)
    mean = np.maximum(sample.mean(0), 1.0)
    target = EXPOSURE_TARGET if method == "gray_world_exposure" else float(mean.mean())
    return np.clip(target / mean, 1.0 / MAX_GAIN, MAX_GAIN).astype(np.float32)


def apply_gains(rgb: np.ndarray, g: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 times per-channel gains, rounded and clipped back to uint8."""
    out = rgb.astype(np.float32) * g.reshape(1, 1, 3)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def white_balance(rgb: np.ndarray, method: str) -> np.ndarray:
    """`rgb` (HxWx3 uint8) balanced by its own statistics; the input itself when method is none."""
    if method == "none":
        return rgb
    return apply_gains(rgb, gains(rgb, method))
