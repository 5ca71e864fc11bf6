"""The empty-vs-object head: once humans have labelled frames, a logistic head on the frames'
embeddings (the Depot's encoder: the production model when there is one) learns what the
background model still keeps by mistake. A human's null label is an empty frame, a SKU an item.

It only ever drops frames the background model kept (where it was trained): the frames the
background model dropped never reach a human, so the head has not seen their kind."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge_agent.lake import Lake

MIN_PER_CLASS = 20  # human labels of each kind before a head is fitted
DROP_AT = 0.97  # P(empty) from which a kept frame is dropped


@dataclass(frozen=True)
class EmptyHead:
    w: np.ndarray
    b: float
    encoder_id: str
    n_empty: int
    n_object: int

    def p_empty(self, vectors: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.clip(vectors @ self.w + self.b, -30, 30)))


def fit_head(vectors: np.ndarray, is_empty: Sequence[bool], encoder_id: str) -> EmptyHead | None:
    """A head from labelled vectors; None until there are MIN_PER_CLASS of each kind."""
    from flywheel.label.ensemble import logistic_fit

    y = np.asarray(is_empty, bool)
    if y.sum() < MIN_PER_CLASS or (~y).sum() < MIN_PER_CLASS:
        return None
    w = logistic_fit(np.asarray(vectors, float).tolist(), y.astype(int).tolist(), l2=1.0)
    return EmptyHead(np.asarray(w[:-1]), w[-1], encoder_id, int(y.sum()), int((~y).sum()))


def frame_vectors(lake: Lake, day: str, frame_ids: Sequence[str], encoder) -> dict[str, np.ndarray]:  # noqa: ANN001
    """The frames' embeddings: those the Depot stored at ingest, the rest encoded from their JPEG."""
    from flywheel.depot.embed import encoder_id
    from flywheel.depot.frames import from_image_bytes
    from flywheel.depot.ingest import read_frames
    from flywheel.depot.vectors import read_vectors

    stored = read_vectors(lake, encoder_id(encoder.spec), day)
    out = {f: stored[f] for f in frame_ids if f in stored}
    missing = set(frame_ids) - set(out)
    if missing:
        table = read_frames(lake, day, columns=["frame_id", "image_jpeg"])
        rows = [r for r in (table.to_pylist() if table is not None else []) if r["frame_id"] in missing]
        if rows:
            vecs = encoder.encode_images([from_image_bytes(r["image_jpeg"]) for r in rows])
            out.update(zip((r["frame_id"] for r in rows), vecs, strict=True))
    return out


def train_head(lake: Lake, encoder) -> tuple[EmptyHead | None, int]:  # noqa: ANN001
    """(head or None, human labels found) from every day's merged labels with source "human"."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from flywheel.depot.embed import encoder_id
    from flywheel.label import tables

    xs, ys = [], []
    for info in lake.list(f"{tables.MERGED}/"):
        if not info.key.endswith("merged.parquet") or "/date=" not in info.key:
            continue
        day = info.key.split("/date=")[1].split("/")[0]
        try:
            rows = pq.read_table(pa.BufferReader(lake.get(info.key)), columns=["frame_id", "label", "source"])
        except Exception:  # noqa: BLE001 - the review stage's file; a bad one only costs its labels
            continue
        human = {r["frame_id"]: r["label"] is None for r in rows.to_pylist() if r["source"] == "human"}
        vecs = frame_vectors(lake, day, sorted(human), encoder)
        for f, v in vecs.items():
            xs.append(v)
            ys.append(human[f])
    if not xs:
        return None, 0
    return fit_head(np.stack(xs), ys, encoder_id(encoder.spec)), len(xs)
