"""A capture day holding one of every bad object we can think of, through the real landing sensor
and the real depot_ingest_job, on a file lake and on SeaweedFS: the run succeeds, every good clip
is ingested, every bad object is quarantined with its reason, and no bad date becomes a partition."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from assets.depot import capture_days
from edge_agent.contract.layout import LANDING_ARRIVALS
from flywheel.depot.ingest import read_frames
from jobs.depot import depot_ingest_job, landing_clips_sensor
from tests.depot.test_end_to_end import _assets, _resources
from tests.depot.test_ingest import build_clip_from_bytes
from tests.support.clips import build_clip, land, land_clip, sidecar_with
from tests.support.hostile import audio_only_mp4, put_raw, quarantine_records

DAY = "2026-11-24"


def _land_the_bad(lake, good, local: bool) -> dict[str, str]:
    """Land the bad objects; returns key -> the reason each must be quarantined with."""
    bad: dict[str, str] = {}

    def both(c, reason):
        bad[c.clip_key], bad[c.sidecar_key] = reason, reason

    full = build_clip(seed=50, device_id="cart-trunc")
    trunc = build_clip_from_bytes(full, full.clip_bytes[: len(full.clip_bytes) // 3])
    both(land(lake, trunc), "undecodable")
    sha = build_clip(seed=51, device_id="cart-sha")
    flipped = bytearray(sha.clip_bytes)
    flipped[len(flipped) // 2] ^= 0xFF
    both(land(lake, sha, clip_bytes=bytes(flipped)), "sha256_mismatch")
    v9 = build_clip(seed=52, device_id="cart-v9")
    both(land(lake, v9, sidecar_bytes=sidecar_with(v9, schema_version=9)), "unknown_schema_version")
    late = build_clip(seed=53, device_id="cart-late")
    both(land(lake, late, sidecar_bytes=sidecar_with(late, started_at="9999-12-31T23:59:59+00:00")),
         "internal_error")
    deep = build_clip(seed=54, device_id="cart-deep")
    both(land(lake, deep, sidecar_bytes=b"[" * 100_000), "bad_sidecar")
    nan = build_clip(seed=55, device_id="cart-nan")
    doc = json.loads(nan.sidecar_bytes)
    doc["frames"][3]["confidence"] = float("nan")
    both(land(lake, nan, sidecar_bytes=json.dumps(doc).encode()), "bad_sidecar")
    audio = build_clip_from_bytes(build_clip(seed=56, device_id="cart-audio"), audio_only_mp4())
    both(land(lake, audio), "undecodable")
    more = build_clip(seed=57, device_id="cart-more")
    doc = json.loads(more.sidecar_bytes)
    doc["clip"]["frame_count"], doc["frames"] = 20, doc["frames"][:20]
    both(land(lake, more, sidecar_bytes=json.dumps(doc).encode()), "video_mismatch")
    twin = build_clip(seed=58, device_id="cart-twin-b")  # the same bytes as cart-twin-a's clip
    both(land(lake, twin), "duplicate_clip")
    orphan = build_clip(seed=59, device_id="cart-orphan")
    bad[land(lake, orphan, sidecar=False).clip_key] = "clip_without_sidecar"
    folder = f"landing/clips/date={DAY}/store=store-a/device=cart-junk"
    lake.put(f"{folder}/README", b"hello")
    bad[f"{folder}/README"] = "bad_key"
    # junk named exactly like a good clip's stem must not take the good clip down with it
    lake.put(good.clip_key[: -len(".mp4")], b"?")
    bad[good.clip_key[: -len(".mp4")]] = "bad_key"
    # dates that are not calendar dates, and markers with impossible times
    for day in ("2026-13-45", "2026-02-30"):
        c = build_clip(seed=60, device_id="cart-date")
        key = c.clip_key.replace(f"date={DAY}", f"date={day}")
        lake.put(key, c.clip_bytes)
        bad[key] = "bad_date"
    marker = f"{LANDING_ARRIVALS}/20261399/9999/20261399T999999.000000Z~{DAY}~store-a~cart-1~{'a' * 32}"
    lake.put(marker, b"")
    bad[marker] = "bad_key"
    # a name the lake API refuses, written by another client ('#': a local lake hides such names
    # as its own in-flight staging files, so only S3 can list it)
    if not local:
        name = f"landing/clips/date={DAY}/store=store-a/device=cart-x/e#f.mp4"
        put_raw(lake, name, b"junk")
        bad[name] = "bad_key"
    if local:  # names the lake API refuses, written by another client
        for name in (f"landing/clips/date={DAY}/store=store-a/device=cart-x/a\\b.mp4",
                     f"landing/clips/date={DAY}/store=store-a/device=cart-x/c\x07d.json",
                     "landing/clips/date=２０２６-11-24/store=store-a/device=cart-x/e.mp4",
                     f"{LANDING_ARRIVALS}/20261124/1000/t\\u~{DAY}~store-a~cart-x~{'b' * 32}"):
            put_raw(lake, name, b"junk")
            bad[name] = "bad_date" if "２" in name else "bad_key"
    return bad


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", pytest.param("s3", marks=pytest.mark.integration)])
def test_a_day_of_hostile_objects_still_ingests_every_good_clip(backend, request) -> None:
    seaweed = request.getfixturevalue("seaweed") if backend == "s3" else None
    lake = request.getfixturevalue("s3_lake" if backend == "s3" else "local_lake")
    good = [land_clip(lake, seed=61, device_id="cart-good1"),
            land_clip(lake, seed=62, device_id="cart-good2"),
            land_clip(lake, seed=58, device_id="cart-twin-a")]
    bad = _land_the_bad(lake, good[0], local=backend == "local")
    resources = _resources(backend, lake, seaweed)
    with dg.instance_for_test() as instance:
        tick = landing_clips_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert [r.partition_key for r in tick.run_requests] == [DAY]  # no bad date is a partition
        assert list(tick.dynamic_partitions_requests[0].partition_keys) == [DAY]
        instance.add_dynamic_partitions(capture_days.name, [DAY])
        job = dg.Definitions(assets=_assets(), jobs=[depot_ingest_job],
                             resources=resources).resolve_job_def("depot_ingest_job")
        run_config = {"ops": {"depot_frames": {"config": {"pending_timeout_s": 0.0}}}}
        result = job.execute_in_process(instance=instance, partition_key=DAY, run_config=run_config)
        assert result.success
        md = result.asset_materializations_for_node("depot_frames")[0].metadata
        assert md["clips_ingested"].value == len(good)
        again = job.execute_in_process(instance=instance, partition_key=DAY, run_config=run_config)
        md2 = again.asset_materializations_for_node("depot_frames")[0].metadata
        assert again.success and md2["clips_already_ingested"].value == len(good)
        assert md2["quarantined_objects"].value == 0
    assert set(read_frames(lake, DAY, ["clip_id"]).column("clip_id").to_pylist()) == {c.clip_id for c in good}
    records = quarantine_records(lake)
    got = {k: records[k]["reason"] for k in bad if k in records}
    assert got == bad
    assert all(records[k]["detail"] for k in bad)
    left = {i.key for i in lake.list("landing/clips/")}
    assert not left & set(bad)
    assert {c.clip_key for c in good} <= left
