"""Landing -> sensor -> ingest -> index -> search and replay, on the local lake and on SeaweedFS,
through a real Dagster instance (sensor tick, then the job the sensor asked for)."""

from __future__ import annotations

import dagster as dg
import pytest

from assets.depot import capture_days
from flywheel.depot.index import IndexLocation
from flywheel.depot.replay import render_replay
from flywheel.depot.search import SearchQuery, search
from flywheel.depot.sql import run_sql
from jobs.depot import depot_ingest_job, landing_clips_sensor
from resources.encoder import EncoderResource
from resources.index import LocalIndexResource, S3IndexResource
from resources.lake import LocalLakeResource, S3LakeResource
from tests.support.clips import land_clip

DAY = "2026-11-24"


def _resources(kind: str, lake, seaweed=None) -> dict:
    if kind == "local":
        return {"lake": LocalLakeResource(root=str(lake.local_path())), "index": LocalIndexResource(),
                "encoder": EncoderResource(kind="descriptor")}
    return {"lake": S3LakeResource(uri=lake.uri, endpoint=seaweed.endpoint, access_key_id=seaweed.access_key,
                                   secret_access_key=seaweed.secret_key),
            "index": S3IndexResource(endpoint=seaweed.endpoint, access_key_id=seaweed.access_key,
                                     secret_access_key=seaweed.secret_key,
                                     uri=lake.url("depot/index")),
            "encoder": EncoderResource(kind="descriptor")}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", pytest.param("s3", marks=pytest.mark.integration)])
def test_landing_to_search_and_replay(backend: str, request: pytest.FixtureRequest, tmp_path) -> None:
    seaweed = request.getfixturevalue("seaweed") if backend == "s3" else None
    lake = request.getfixturevalue("s3_lake" if backend == "s3" else "local_lake")
    clips = [land_clip(lake, seed=i, product=i % 3, device_id=f"cart-{i % 2}", store_id="store-a",
                       low_confidence=i == 4) for i in range(6)]
    resources = _resources(backend, lake, seaweed)
    with dg.instance_for_test() as instance:
        tick = landing_clips_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        (req,) = tick.run_requests
        instance.add_dynamic_partitions(capture_days.name, [req.partition_key])
        job = dg.Definitions(assets=_assets(), jobs=[depot_ingest_job],
                             resources=resources).resolve_job_def("depot_ingest_job")
        result = job.execute_in_process(instance=instance, partition_key=req.partition_key)
        assert result.success
        idx = result.asset_materializations_for_node("depot_index")[0].metadata
        frames = result.asset_materializations_for_node("depot_frames")[0].metadata
        assert frames["clips_ingested"].value == 6
        frames_rows = frames["rows_total"].value
        assert idx["rows_total"].value == frames["rows_total"].value > 0
        assert idx["vectors_reused_from_ingest"].value == idx["rows_day"].value  # embedded at decode
        fleet = result.asset_materializations_for_node("depot_fleet_rollup")[0].metadata
        assert fleet["clips_landed"].value == 6 and fleet["devices"].value == 2
    loc = resources["index"].location(lake)
    if backend == "s3":
        assert loc.uri.startswith("s3://") and loc.storage_options["allow_http"] == "true"
    # metadata filters
    hits = search(lake, SearchQuery(device="cart-0", max_confidence=0.5, limit=50), loc)
    assert {h.clip_id for h in hits} == {clips[4].clip_id}
    assert search(lake, SearchQuery(device="cart-1", max_confidence=0.5, limit=50), loc) == []
    assert all(h.device_id == "cart-1" for h in search(lake, SearchQuery(device="cart-1", limit=50), loc))
    nothing = search(lake, SearchQuery(label="none", limit=50), loc)  # frames before the item shows
    assert nothing and all(h.prediction is None and h.frame_index < 6 for h in nothing)
    lowc = search(lake, SearchQuery(max_confidence=0.5, limit=50), loc)
    assert {h.clip_id for h in lowc} == {clips[4].clip_id}
    trig = search(lake, SearchQuery(trigger="motion", trigger_frames_only=True, limit=50), loc)
    assert len(trig) == 6 and all(h.frame_index == 10 for h in trig)
    # similarity: frames like clip 0 (product 0) -> the other product-0 clip (3) ranks first
    like = search(lake, SearchQuery(like_clip=clips[0].clip_id, limit=3), loc)
    assert like[0].clip_id == clips[3].clip_id and clips[0].clip_id not in {h.clip_id for h in like}
    # similarity to an image file: a thumbnail of a clip-1 frame finds clip 1 or its look-alike 4
    (probe,) = search(lake, SearchQuery(like_frame=f"{clips[1].clip_id}-000016", limit=1), loc)
    img = tmp_path / "q.jpg"
    img.write_bytes(lake.get(probe.thumbnail.removeprefix(lake.uri + "/")) if not lake.is_local
                    else open(probe.thumbnail, "rb").read())
    by_img = search(lake, SearchQuery(like_image=str(img), limit=3), loc)
    assert {h.clip_id for h in by_img} <= {clips[1].clip_id, clips[4].clip_id}
    assert by_img[0].distance is not None and by_img[0].distance < 0.1
    # ad-hoc SQL over the Parquet lake (DuckDB; an S3 lake is read through the lake API)
    cols, rows = run_sql(lake, "SELECT count(DISTINCT clip_id), count(*) FROM frames")
    assert rows[0][0] == 6 and rows[0][1] == frames_rows
    # replay of a search result
    rep = render_replay(lake, like[0].clip_id, out_dir=tmp_path / "replay")
    assert rep.frames == 24 and rep.sheet_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert lake.exists(rep.video_key) and lake.head(rep.video_key).size > 1000
    import av

    with av.open(str(rep.video_path)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 24
    assert isinstance(loc, IndexLocation)


def _assets():
    from assets import depot

    return [depot.depot_frames, depot.depot_index, depot.depot_fleet_rollup, depot.landing_clips]


@pytest.mark.slow
def test_vector_index_is_built_once_the_table_is_large(local_lake) -> None:
    from flywheel.depot.config import DepotConfig
    from flywheel.depot.embed import DescriptorEncoder
    from flywheel.depot.index import index_day, open_table
    from flywheel.depot.ingest import ingest_day

    clips = [land_clip(local_lake, seed=i, product=i % 4, device_id=f"cart-{i % 3}") for i in range(12)]
    ingest_day(local_lake, DAY, DepotConfig(frame_every=1))  # 24 frames per clip
    small = index_day(local_lake, DAY, DescriptorEncoder(), vector_index_min_rows=10_000)
    assert not small.vector_index and small.rows_total == 288
    big = index_day(local_lake, DAY, DescriptorEncoder(), vector_index_min_rows=256)
    assert big.vector_index
    tbl, _ = open_table(local_lake)
    kinds = {tuple(ix.columns)[0]: ix.index_type for ix in tbl.list_indices()}
    assert kinds["vector"] == "IvfPq" and kinds["store_id"] == "Bitmap" and kinds["date"] == "BTree"
    hits = search(local_lake, SearchQuery(like_clip=clips[0].clip_id, device="cart-1", limit=5))
    assert len(hits) == 5 and {h.device_id for h in hits} == {"cart-1"}


def test_reindexing_a_day_replaces_its_rows_exactly(local_lake) -> None:
    from flywheel.depot.embed import DescriptorEncoder
    from flywheel.depot.index import index_day, open_table
    from flywheel.depot.ingest import ingest_day

    land_clip(local_lake, seed=1)
    land_clip(local_lake, seed=2, day="2026-11-25")
    ingest_day(local_lake, DAY)
    ingest_day(local_lake, "2026-11-25")
    first = index_day(local_lake, DAY, DescriptorEncoder())
    index_day(local_lake, "2026-11-25", DescriptorEncoder())
    land_clip(local_lake, seed=3, device_id="cart-late")  # a late clip for the first day
    ingest_day(local_lake, DAY)
    again = index_day(local_lake, DAY, DescriptorEncoder())
    again2 = index_day(local_lake, DAY, DescriptorEncoder())
    tbl, _ = open_table(local_lake)
    assert again.rows_day == 2 * first.rows_day == again2.rows_day
    assert tbl.count_rows(f"date = '{DAY}'") == again.rows_day
    assert tbl.count_rows() == again.rows_day + first.rows_day  # the other day untouched
    ids = tbl.search().select(["frame_id"]).limit(1000).to_arrow().column("frame_id").to_pylist()
    assert len(ids) == len(set(ids))
