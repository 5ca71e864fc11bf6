"""The oracle benchmark's training data: perfectly labelled production frames that share nothing
with the frozen sets (checked by frame id, session id and image hash), accepted by the leakage
guard, and generated once per kept lake."""

from __future__ import annotations

import polars as pl

from benchmarks.bench_learner import ORACLE_STORES, oracle_lake
from edge_agent.lake import Lake
from flywheel.learner.config import DatasetSpec
from flywheel.learner.labelled_frames import read_frames
from flywheel.learner.pipeline import SimSources, build_dataset


def test_oracle_frames_are_disjoint_labelled_and_generated_once(tmp_path):
    lake = Lake.at_path(tmp_path / "lake")
    small = SimSources(n_per_sku=2, n_test=16, n_insertions=2)
    keys, check, seconds = oracle_lake(lake, seed=1, n_per_store=10, per_session=8, sources=small)
    assert len(keys) == len(ORACLE_STORES) and seconds > 0
    assert check["frames"] == 10 * len(ORACLE_STORES) and check["sessions"] >= len(ORACLE_STORES)
    assert check["shared_frame_ids"] == check["shared_sessions"] == check["shared_images"] == 0
    frames = pl.concat([read_frames(lake.get(k)) for k in keys])
    assert frames["distribution"].unique().to_list() == ["production"]
    assert frames.filter(~pl.col("is_empty"))["sku"].null_count() == 0  # every item labelled
    ds, _ = build_dataset(lake, DatasetSpec(), extra_sources=tuple(keys))  # the guard accepts them
    assert ds.manifest["counts"]["members"] > frames.height
    again = oracle_lake(lake, seed=1, n_per_store=10, per_session=8, sources=small)
    assert again == (keys, check, 0.0)  # a kept lake is not re-rendered
