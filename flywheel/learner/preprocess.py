"""The one preprocessing every consumer applies: training materialisation, evaluation, the golden
inputs, and the edge device (documented in the model card as `PREPROCESSING`)."""

from __future__ import annotations

import io
from collections.abc import Iterable

import numpy as np


def preprocessing_doc(imgsz: int) -> dict:
    """What the device must do to a camera frame before ONNX Runtime sees it."""
    return {
        "input_name": "images",
        "layout": "NCHW",
        "dtype": "float32",
        "color": "RGB",
        "resize": {"width": imgsz, "height": imgsz, "mode": "stretch", "interpolation": "bilinear"},
        "scale": 1.0 / 255.0,
        "mean": [0.0, 0.0, 0.0],
        "std": [1.0, 1.0, 1.0],
        "output": "probabilities (softmax over `classes`, shape [N, len(classes)])",
    }


def to_tensor(rgb: np.ndarray, imgsz: int) -> np.ndarray:
    """HxWx3 uint8 RGB -> 3xSxS float32 in 0..1 (PIL bilinear, exactly like materialize.py)."""
    from PIL import Image

    im = Image.fromarray(rgb).resize((imgsz, imgsz), Image.Resampling.BILINEAR)
    return (np.asarray(im, dtype=np.float32) / 255.0).transpose(2, 0, 1)


def png_batch(pngs: Iterable[bytes], imgsz: int) -> np.ndarray:
    """PNG bytes -> NCHW float32 batch, with the same PNG round trip training sees."""
    from PIL import Image

    out = []
    for data in pngs:
        with Image.open(io.BytesIO(data)) as im:
            out.append(to_tensor(np.asarray(im.convert("RGB")), imgsz))
    return np.stack(out) if out else np.zeros((0, 3, imgsz, imgsz), np.float32)
