"""The one preprocessing every consumer applies: training materialisation, evaluation, the golden
inputs, and the edge device (documented in the model card as `PREPROCESSING`)."""

from __future__ import annotations

import io
from collections.abc import Iterable

import numpy as np

from edge_agent.whitebalance import white_balance


def preprocessing_doc(imgsz: int, task: str = "classify", wb: str = "none") -> dict:
    """What the device must do to a camera frame before ONNX Runtime sees it."""
    if task == "detect":  # ultralytics' own letterbox; outputs [N, 4 + classes, anchors]
        return {"input_name": "images", "layout": "NCHW", "dtype": "float32", "color": "RGB",
                "resize": {"width": imgsz, "height": imgsz, "mode": "letterbox", "pad_value": 114},
                "scale": 1.0 / 255.0, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0],
                "output": "ultralytics detect head: [N, 4 + len(classes), anchors], xywh in pixels"}
    return {
        "input_name": "images",
        "layout": "NCHW",
        "dtype": "float32",
        "color": "RGB",
        "resize": {"width": imgsz, "height": imgsz, "mode": "stretch", "interpolation": "nearest",
                   "index": "src = floor(dst * SRC / DST) per axis"},
        # after the resize, on the resized pixels (edge_agent/whitebalance.py)
        "white_balance": wb,
        "scale": 1.0 / 255.0,
        "mean": [0.0, 0.0, 0.0],
        "std": [1.0, 1.0, 1.0],
        "output": "logits over `classes`, shape [N, len(classes)]; apply softmax for confidence",
    }


def resize_nearest(rgb: np.ndarray, imgsz: int, wb: str = "none") -> np.ndarray:
    """Nearest-neighbour stretch to imgsz x imgsz with the edge agent's exact index rule
    (edge_agent/model.py), then white balance `wb`, so training, evaluation and the device see
    identical pixels."""
    H, W = rgb.shape[:2]
    ys = (np.arange(imgsz) * H // imgsz).astype(np.intp)
    xs = (np.arange(imgsz) * W // imgsz).astype(np.intp)
    return white_balance(np.ascontiguousarray(rgb[ys][:, xs]), wb)


def to_tensor(rgb: np.ndarray, imgsz: int, wb: str = "none") -> np.ndarray:
    """HxWx3 uint8 RGB -> 3xSxS float32 in 0..1."""
    return (resize_nearest(rgb, imgsz, wb).astype(np.float32) * (1.0 / 255.0)).transpose(2, 0, 1)


def decode_png(png: bytes) -> np.ndarray:
    """A dataset frame's PNG bytes -> HxWx3 uint8 RGB."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGB"))


def encode_png(rgb: np.ndarray) -> bytes:
    """HxWx3 uint8 RGB -> PNG bytes (lossless: a dataset frame's format)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def png_batch(pngs: Iterable[bytes], imgsz: int, wb: str = "none") -> np.ndarray:
    """PNG bytes -> NCHW float32 batch, with the same PNG round trip training sees."""
    out = [to_tensor(decode_png(data), imgsz, wb) for data in pngs]
    return np.stack(out) if out else np.zeros((0, 3, imgsz, imgsz), np.float32)
