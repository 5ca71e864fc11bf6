"""The empty-vs-object head: fitted on human labels over real frame embeddings, it drops kept
frames it is sure are empty and never a barcode frame."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flywheel.label import tables
from flywheel.label.empty_head import MIN_PER_CLASS, fit_head
from tests.label.fleet_day import shared_fleet_day


@pytest.fixture(scope="module")
def fleet_day(tmp_path_factory):  # noqa: ANN001, ANN201
    return shared_fleet_day(tmp_path_factory)


def test_fit_head_needs_both_kinds_and_separates_them() -> None:
    rng = np.random.default_rng(0)
    empty = rng.normal(0, 1, (40, 8)) + np.eye(8)[0] * 3
    items = rng.normal(0, 1, (40, 8)) - np.eye(8)[0] * 3
    head = fit_head(np.vstack([empty, items]), [True] * 40 + [False] * 40, "descriptor_v1")
    assert head is not None and head.n_empty == 40
    p = head.p_empty(np.vstack([empty, items]))
    assert p[:40].mean() > 0.9 and p[40:].mean() < 0.1
    assert fit_head(empty[:MIN_PER_CLASS], [True] * MIN_PER_CLASS, "x") is None


@pytest.mark.slow
def test_head_on_a_fleet_day(fleet_day) -> None:
    from flywheel.depot.embed import load_encoder
    from flywheel.label.background import candidates_rows
    from flywheel.label.empty_head import train_head

    lake, day, truth = fleet_day.lake, fleet_day.day, fleet_day.truth
    encoder = load_encoder({"kind": "descriptor", "version": 1})
    assert train_head(lake, encoder) == (None, 0)  # no human labels yet
    # humans labelled the day (a None label = an empty frame), as the review stage records them
    merged = [{"frame_id": f, "label": t.sku, "source": "human"} for f, t in sorted(truth.items())]
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(merged), sink)
    lake.put(f"{tables.MERGED}/date={day}/merged.parquet", sink.getvalue().to_pybytes())
    head, n = train_head(lake, encoder)
    assert head is not None and n == len(truth) and head.encoder_id == "descriptor_v1"
    base, _ = candidates_rows(lake, day)
    rows, res = candidates_rows(lake, day, head=head, encoder=encoder)
    kept_before = {r["frame_id"] for r in base if r["kept"]}
    kept_after = {r["frame_id"] for r in rows if r["kept"]}
    assert kept_after <= kept_before and res.dropped_by_head == len(kept_before - kept_after)
    newly = kept_before - kept_after
    assert sum(truth[f].is_empty for f in newly) >= 0.9 * len(newly)  # it drops (mostly) empties
    assert all(r["reason"].startswith("empty head") for r in rows if r["frame_id"] in newly)
    lake.delete(f"{tables.MERGED}/date={day}/merged.parquet")
