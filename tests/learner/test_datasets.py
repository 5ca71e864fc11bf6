"""Dataset versions: content-addressed ids, split by session without leakage, and clear errors for
data no training should start on. Fakes in the simulator's export format, plus the real simulator."""

from __future__ import annotations

import polars as pl
import pytest

from flywheel.learner.config import EMPTY_CLASS, DatasetSpec, SplitRule
from flywheel.learner.datasets import (
    assign_splits,
    build_members,
    load_dataset_version,
    read_members,
    version_id,
    write_dataset_version,
)
from flywheel.learner.errors import DatasetError
from flywheel.learner.labelled_frames import normalise, read_frames
from tests.learner.fakes import SKUS, fake_frames, to_parquet

CATALOG = set(SKUS)


def test_same_inputs_same_version_in_any_order(local_lake):
    df = fake_frames(n_sessions=8, empty_every=4)
    a, created_a = write_dataset_version(local_lake, df, DatasetSpec(), CATALOG, ["src"])
    b, created_b = write_dataset_version(local_lake, df.sample(fraction=1.0, shuffle=True, seed=3),
                                         DatasetSpec(), CATALOG, ["src"])
    assert a.version == b.version and a.version.startswith("ds-")
    assert created_a and not created_b  # the second build found the same content already there
    assert a.manifest["counts"]["members"] == df.height


def test_label_or_split_rule_change_changes_the_version():
    df = fake_frames(n_sessions=8)
    spec = DatasetSpec()
    base = version_id(build_members(df, spec, CATALOG)[0], spec)
    relabelled = df.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(SKUS[2]))
                                 .otherwise(pl.col("sku")).alias("sku"))
    assert version_id(build_members(relabelled, spec, CATALOG)[0], spec) != base
    other = DatasetSpec(split=SplitRule(val_fraction=0.3))
    assert version_id(build_members(df, other, CATALOG)[0], other) != base
    fewer = df.filter(pl.col("session_id") != df["session_id"][0])
    assert version_id(build_members(fewer, spec, CATALOG)[0], spec) != base
    # a box-only correction: the two-stage model crops and trains its detector on the box
    item = pl.int_range(pl.len()) == df["is_empty"].arg_min()
    reboxed = df.with_columns(pl.when(item).then(pl.lit([1.0, 2.0, 30.0, 40.0], dtype=pl.List(pl.Float32)))
                              .otherwise(pl.col("item_box")).alias("item_box"))
    assert version_id(build_members(reboxed, spec, CATALOG)[0], spec) != base


@pytest.mark.parametrize("by", ["session_id", "device_id"])
def test_no_group_sits_on_both_sides(by):
    df = fake_frames(n_sessions=12, empty_every=3)
    members, _ = build_members(df, DatasetSpec(split=SplitRule(by=by)), CATALOG)
    sides = members.group_by(by).agg(pl.col("split").n_unique().alias("n"))
    assert sides["n"].max() == 1
    assert set(members["split"].unique()) == {"train", "val"}


def test_split_is_stable_when_data_grows():
    rule = SplitRule()
    small = assign_splits([f"s{i}" for i in range(40)], rule)
    large = assign_splits([f"s{i}" for i in range(80)], rule)
    assert all(large[g] == side for g, side in small.items())
    assert 0.05 < sum(v == "val" for v in large.values()) / 80 < 0.4


def test_two_groups_still_get_both_sides():
    assert sorted(assign_splits(["a", "b"], SplitRule(val_fraction=0.01)).values()) == ["train", "val"]


LONE_SKU = "4000000000017"


def _one_sku_sessions(per_sku: int = 4) -> pl.DataFrame:
    """Sessions holding one SKU each (classes tied to few sessions: where a hash split by session
    leaves classes out of validation), plus one SKU seen in a single session only."""
    parts = [fake_frames(n_sessions=1, frames_per_session=2, skus=(sku,), seed=j, id_prefix=f"k{k}-")
             for k, sku in enumerate(SKUS) for j in range(per_sku)]
    parts.append(fake_frames(n_sessions=1, frames_per_session=2, skus=(LONE_SKU,), id_prefix="lone-"))
    return pl.concat(parts)


def test_every_class_reaches_validation_without_splitting_a_session():
    from flywheel.learner.datasets import class_balance

    df = _one_sku_sessions()
    hash_only_misses = 0
    for i in range(16):
        spec = DatasetSpec(split=SplitRule(salt=f"salt-{i}"))
        members, _ = build_members(df, spec, None)
        assert members.group_by("session_id").agg(pl.col("split").n_unique())["split"].max() == 1
        bal = class_balance(members, "session_id")
        assert bal["classes_missing_in_train"] == []  # the lone class trains, it cannot validate
        assert bal["classes_missing_in_val"] == bal["classes_in_one_group"] == [LONE_SKU]
        plain = DatasetSpec(split=SplitRule(salt=f"salt-{i}", cover_classes=False))
        hash_only_misses += len(class_balance(build_members(df, plain, None)[0], "session_id")
                                ["classes_missing_in_val"]) > 1
    assert hash_only_misses > 0  # the plain hash split really does leave classes out of validation


def test_the_demo_bootstrap_set_validates_every_class(tmp_path):
    """The simulator's bootstrap set at the demo's size: a plain hash split by session leaves SKUs
    out of validation (ultralytics then reports the val set invalid); the covering split does not."""
    from flywheel.learner.datasets import class_balance
    from flywheel.learner.pipeline import SimSources
    from flywheel.sim import build_bootstrap_dataset, default_world, export_dataset

    world = default_world(0)
    export_dataset(build_bootstrap_dataset(0, SimSources().n_per_sku, world=world), tmp_path / "b.parquet")
    frames = read_frames(str(tmp_path / "b.parquet"))
    catalog = {p.ean for p in world.catalog}
    plain = DatasetSpec(split=SplitRule(cover_classes=False))
    assert class_balance(build_members(frames, plain, catalog)[0], "session_id")["classes_missing_in_val"]
    members, _ = build_members(frames, DatasetSpec(), catalog)
    bal = class_balance(members, "session_id")
    assert bal["classes_missing_in_val"] == bal["classes_missing_in_train"] == []
    assert members.group_by("session_id").agg(pl.col("split").n_unique())["split"].max() == 1
    assert 0.15 < (members["split"] == "val").mean() < 0.3


def test_class_cover_is_part_of_the_version_and_deterministic():
    df = _one_sku_sessions()
    spec, plain = DatasetSpec(), DatasetSpec(split=SplitRule(cover_classes=False))
    a = build_members(df, spec, None)[0]
    b = build_members(df.sample(fraction=1.0, shuffle=True, seed=1), spec, None)[0]
    assert a.select("frame_id", "split").equals(b.select("frame_id", "split"))
    assert version_id(a, spec) != version_id(build_members(df, plain, None)[0], plain)


def test_frames_of_frozen_test_sets_are_refused():
    df = fake_frames(n_sessions=6)
    with pytest.raises(DatasetError, match="frozen standard test set"):
        build_members(df, DatasetSpec(), CATALOG, frozen_frame_ids={df["frame_id"][3]})


def test_empty_dataset_is_a_clear_error():
    with pytest.raises(DatasetError, match="empty: 0 labelled frames"):
        build_members(fake_frames().head(0), DatasetSpec(), CATALOG)


def test_single_class_is_a_clear_error():
    df = fake_frames(skus=(SKUS[0],))
    with pytest.raises(DatasetError, match=r"single class \['4006381333931'\]"):
        build_members(df, DatasetSpec(include_empty=False), CATALOG)


def test_skus_outside_the_catalog_are_a_clear_error():
    df = fake_frames(skus=(*SKUS, "9999999999994"))
    with pytest.raises(DatasetError, match=r"1 label\(s\) not in the catalog .*9999999999994"):
        build_members(df, DatasetSpec(), CATALOG)


def test_missing_and_corrupt_files_fail_before_training(local_lake):
    ds, _ = write_dataset_version(local_lake, fake_frames(n_sessions=6), DatasetSpec(shard_rows=10),
                                  CATALOG, ["src"])
    assert len(ds.manifest["shards"]) == 4
    assert read_members(local_lake, ds, CATALOG).height == 36
    shard = ds.manifest["shards"][2]["key"]
    data = local_lake.get(shard)
    local_lake.put(shard, data[:-10] + b"0123456789")
    with pytest.raises(DatasetError, match="is corrupt"):
        read_members(local_lake, load_dataset_version(local_lake, ds.version))
    local_lake.delete(shard)
    with pytest.raises(DatasetError, match=f"file {shard} is missing"):
        read_members(local_lake, ds)
    with pytest.raises(DatasetError, match="has no manifest"):
        load_dataset_version(local_lake, "ds-000000000000000000000000")


def test_empty_frames_become_the_empty_class_and_rejects_are_counted():
    df = fake_frames(n_sessions=6, empty_every=3)
    df = df.with_columns(pl.when(pl.int_range(pl.len()) == 1).then(None).otherwise(pl.col("sku"))
                         .alias("sku"))  # an item frame nobody labelled
    members, rejects = build_members(df, DatasetSpec(), CATALOG)
    assert rejects == {"no_label": 1}
    assert (members["label"] == EMPTY_CLASS).sum() == df["is_empty"].sum()
    _, rejects = build_members(df, DatasetSpec(include_empty=False), CATALOG)
    assert rejects["empty_excluded"] == df["is_empty"].sum()


def test_class_balance_report(local_lake):
    ds, _ = write_dataset_version(local_lake, fake_frames(n_sessions=10, empty_every=4), DatasetSpec(),
                                  CATALOG, ["src"])
    bal = ds.manifest["class_balance"]
    assert set(bal["per_class"]) == {*SKUS, EMPTY_CLASS}
    assert sum(v["train"] + v["val"] for v in bal["per_class"].values()) == 60
    assert bal["imbalance_ratio"] >= 1.0


def test_real_simulator_export_round_trips(tmp_path):
    """The simulator's own Parquet (struct conditions, float boxes) reads and versions."""
    from flywheel.sim import build_bootstrap_dataset, default_world, export_dataset

    world = default_world(0)
    export_dataset(build_bootstrap_dataset(0, n_per_sku=2, world=world), tmp_path / "b.parquet")
    frames = read_frames(str(tmp_path / "b.parquet"))
    assert frames.schema["conditions"] == pl.String and frames.height > 21
    members, _ = build_members(frames, DatasetSpec(), {p.ean for p in world.catalog})
    assert members["label"].n_unique() >= 21
    assert version_id(members, DatasetSpec()) == version_id(
        build_members(normalise(frames), DatasetSpec(), {p.ean for p in world.catalog})[0],
        DatasetSpec())
    assert to_parquet(frames.head(1))  # the fakes' writer accepts the normalised schema


def test_frozen_standard_sets_keep_their_version_and_report_drift(local_lake):
    from flywheel.learner import reference_sets

    first = reference_sets.import_standard_set(local_lake, "store_A", to_parquet(fake_frames(seed=1)))
    again = reference_sets.import_standard_set(local_lake, "store_A", to_parquet(fake_frames(seed=1)))
    assert first.created and not again.created and again.key == first.key
    drifted = reference_sets.import_standard_set(local_lake, "store_A", to_parquet(fake_frames(seed=2)))
    assert drifted.key == first.key and drifted.drift_sha256 and drifted.drift_sha256 != first.sha256
    frames, versions = reference_sets.read_standard_sets(local_lake)
    assert versions == {"store_A": first.sha256}
    assert frames["store_A"]["frame_id"].to_list() == fake_frames(seed=1)["frame_id"].to_list()
    # the manual collection is not frozen: a new import moves its pointer
    reference_sets.import_manual_collection(local_lake, to_parquet(fake_frames(seed=1)))
    reference_sets.import_manual_collection(local_lake, to_parquet(fake_frames(seed=3)))
    _, manual = reference_sets.read_manual_collection(local_lake)
    assert manual["frame_id"].to_list() == fake_frames(seed=3)["frame_id"].to_list()
