"""Small frames tables in the simulator's Parquet export format, for fast unit tests only.

Each SKU is a coloured rectangle on a grey background with noise, so a tiny model can learn it in a
few epochs; the integration tests use the real simulator.
"""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import polars as pl
from PIL import Image

SKUS = ("4006381333931", "5000112637922", "8712566328352")
COLOURS = ((220, 40, 40), (40, 200, 60), (40, 80, 220))


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def fake_frames(n_sessions: int = 6, frames_per_session: int = 6, skus: tuple[str, ...] = SKUS,
                seed: int = 0, store: str = "manual", empty_every: int = 0, size: tuple[int, int] = (80, 60),
                brightness: float = 1.0, id_prefix: str = "") -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    w, h = size
    rows = []
    for s in range(n_sessions):
        session = f"{id_prefix}{store}-s{seed}-{s}"
        for k in range(frames_per_session):
            i = s * frames_per_session + k
            empty = bool(empty_every) and i % empty_every == 0
            sku = None if empty else skus[i % len(skus)]
            img = np.full((h, w, 3), 128, np.int16)
            box = None
            if not empty:
                c = np.array(COLOURS[skus.index(sku) % len(COLOURS)], np.int16)
                if skus.index(sku) >= len(COLOURS):
                    c = rng.integers(0, 255, 3)
                x1, y1 = int(rng.integers(5, w // 3)), int(rng.integers(5, h // 3))
                x2, y2 = x1 + w // 2, y1 + h // 2
                img[y1:y2, x1:x2] = c
                box = [x1, y1, x2, y2]
            img = np.clip(img * brightness + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
            png = _png(img)
            rows.append({
                "frame_id": id_prefix + hashlib.sha256(png).hexdigest()[:24] + f"-{i}",
                "session_id": session, "device_id": f"dev-{store}-{s % 2}", "store": store,
                "distribution": "manual" if store == "manual" else "production",
                "sku": sku, "is_empty": empty, "item_box": box, "hand_box": None,
                "conditions": json.dumps({"low_light": float(1 - brightness), "noise": 0.1}),
                "image_png": png, "width": w, "height": h,
            })
    return pl.DataFrame(rows, schema_overrides={"item_box": pl.List(pl.Int32),
                                                "hand_box": pl.List(pl.Int32)})


def to_parquet(df: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.write_parquet(buf)
    return buf.getvalue()


def label_days_source():  # noqa: ANN201 - a dagster AssetSpec
    """dataset_version's `merged_labels` input when the Label stage is not in the Definitions (an
    external asset that was never materialized: no labelled days)."""
    import dagster as dg

    from assets.depot import capture_days

    return dg.AssetSpec("merged_labels", partitions_def=capture_days).with_io_manager_key("ref_io_manager")
