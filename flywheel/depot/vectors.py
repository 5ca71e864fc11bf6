"""Per-day frame vectors of one encoder, as Parquet (frame_id, vector) next to the frames table."""

from __future__ import annotations

import numpy as np

from edge_agent.lake import Lake, ObjectNotFound
from flywheel.depot.config import embeddings_key


def read_vectors(lake: Lake, encoder_id: str, day: str) -> dict[str, np.ndarray]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        t = pq.read_table(pa.BufferReader(lake.get(embeddings_key(encoder_id, day))))
    except ObjectNotFound:
        return {}
    ids = t.column("frame_id").to_pylist()
    flat = t.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    vecs = np.asarray(flat, np.float32).reshape(len(ids), -1) if ids else np.zeros((0, 0), np.float32)
    return dict(zip(ids, vecs, strict=True))


def write_vectors(lake: Lake, encoder_id: str, day: str, vectors: dict[str, np.ndarray]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = sorted(vectors)
    dim = len(next(iter(vectors.values()))) if vectors else 0
    flat = (np.concatenate([np.asarray(vectors[i], np.float32) for i in ids]) if ids
            else np.zeros(0, np.float32))
    table = pa.table({"frame_id": pa.array(ids, pa.string()),
                      "vector": pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim)})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, use_dictionary=["frame_id"], write_statistics=["frame_id"])
    lake.put(embeddings_key(encoder_id, day), memoryview(sink.getvalue()))
