"""The lake API against a local directory and a real SeaweedFS server: same behaviour on both."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from edge_agent.contract import ContractError
from edge_agent.lake import MULTIPART_THRESHOLD, Lake, LakeError, ObjectExists, ObjectNotFound


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest) -> Lake:
    return request.getfixturevalue(f"{request.param}_lake")


def test_put_get_head_roundtrip(lake: Lake) -> None:
    info = lake.put("a/b/c.bin", b"hello world")
    assert info.key == "a/b/c.bin" and info.size == 11
    if not lake.is_local:  # S3 single-part etag: the MD5 of the bytes, as head reports it
        assert info.etag == lake.head("a/b/c.bin").etag == '"5eb63bbbe01eeed093cb22bb8f5acdc3"'
    assert lake.get("a/b/c.bin") == b"hello world"
    assert lake.head("a/b/c.bin").size == 11
    assert lake.exists("a/b/c.bin") and not lake.exists("a/b/missing.bin")


def test_byte_ranges(lake: Lake) -> None:
    data = bytes(range(256)) * 4
    lake.put("r.bin", data)
    assert lake.get("r.bin", 0, 10) == data[:10]
    assert lake.get("r.bin", 500, 700) == data[500:700]
    assert lake.get("r.bin", 1000) == data[1000:]  # open-ended: to the end
    assert lake.get("r.bin", 7, 7) == b""
    with pytest.raises(LakeError, match="bad byte range"):
        lake.get("r.bin", 10, 5)


def test_overwrite_replaces_and_conditional_put_refuses(lake: Lake) -> None:
    lake.put("k.json", b"v1")
    lake.put("k.json", b"v2")
    assert lake.get("k.json") == b"v2"
    with pytest.raises(ObjectExists):
        lake.put("k.json", b"v3", if_absent=True)
    assert lake.get("k.json") == b"v2"  # nothing already accepted is overwritten
    lake.put("new.json", b"first", if_absent=True)
    assert lake.get("new.json") == b"first"


def test_conditional_put_has_one_winner_under_contention(lake: Lake) -> None:
    wins: list[int] = []
    lose: list[int] = []

    def writer(i: int) -> None:
        try:
            lake.put("race.json", str(i).encode(), if_absent=True)
            wins.append(i)
        except ObjectExists:
            lose.append(i)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(lose) == 7
    assert lake.get("race.json") == str(wins[0]).encode()


def test_missing_keys_raise_not_found(lake: Lake) -> None:
    with pytest.raises(ObjectNotFound, match="no such object"):
        lake.get("nope/x.bin")
    with pytest.raises(ObjectNotFound):
        lake.get("nope/x.bin", 0, 4)
    with pytest.raises(ObjectNotFound):
        lake.head("nope/x.bin")
    lake.delete("nope/x.bin")  # idempotent


def test_delete(lake: Lake) -> None:
    lake.put("d/x", b"1")
    lake.delete("d/x")
    assert not lake.exists("d/x")
    assert list(lake.list("d")) == []


def test_list_by_prefix_with_start_after_cursor(lake: Lake) -> None:
    keys = [f"landing/clips/date=2026-11-0{d}/store=s/device=d/{i:03d}.json"
            for d in (1, 2) for i in range(7)]
    for k in keys:
        lake.put(k, b"{}")
    lake.put("landing/status/device=d/1.json", b"{}")  # outside the prefix
    listed = [o.key for o in lake.list("landing/clips")]
    assert listed == sorted(keys)
    # Resume from a cursor: only what comes strictly after it.
    cursor = keys[4]
    assert [o.key for o in lake.list("landing/clips/", start_after=cursor)] == sorted(keys)[5:]
    # Page through with a limit, as a sensor does.
    seen, cur = [], None
    while page := [o.key for o in lake.list("landing/clips", start_after=cur, limit=3)]:
        seen += page
        cur = page[-1]
    assert seen == sorted(keys)
    # A cursor past everything lists nothing; a cursor before the prefix lists everything.
    assert list(lake.list("landing/clips", start_after="zzz")) == []
    assert len(list(lake.list("landing/clips", start_after="a"))) == len(keys)
    # Sizes come back with the listing.
    assert {o.size for o in lake.list("landing/status")} == {2}


def test_multipart_upload_of_a_large_file(lake: Lake, tmp_path) -> None:
    path = tmp_path / "big.bin"
    data = os.urandom(MULTIPART_THRESHOLD + 3 * 1024 * 1024 + 17)
    path.write_bytes(data)
    info = lake.put_file("big/clip.mp4", path)
    assert info.size == len(data)
    assert hashlib.sha256(lake.get("big/clip.mp4")).digest() == hashlib.sha256(data).digest()
    assert lake.get("big/clip.mp4", len(data) - 5) == data[-5:]
    with pytest.raises(ObjectExists):
        lake.put_file("big/clip.mp4", path, if_absent=True)


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a//b", "a/./b", "a\\b", "a/\x00b", ""])
def test_hostile_keys_are_rejected_before_any_io(local_lake: Lake, key: str) -> None:
    with pytest.raises(ContractError):
        local_lake.put(key, b"x")
    with pytest.raises(ContractError):
        local_lake.get(key)


def test_local_lake_writes_under_its_root_only(local_lake: Lake) -> None:
    local_lake.put("x/y.txt", b"data")
    assert local_lake.local_path("x/y.txt").read_bytes() == b"data"
    assert local_lake.local_path("x/y.txt").is_relative_to(local_lake.local_path())


def test_bad_uris() -> None:
    with pytest.raises(LakeError, match="scheme"):
        Lake("ftp://host/x")
    with pytest.raises(LakeError, match="bucket"):
        Lake("s3:///nobucket")


def test_unreachable_s3_reports_a_lake_error() -> None:
    from edge_agent.lake import S3Options

    lake = Lake("s3://b/p", s3=S3Options(endpoint="http://127.0.0.1:9", access_key_id="a",
                                         secret_access_key="b", max_retries=1, retry_timeout_s=2))
    with pytest.raises(LakeError, match="head failed"):
        lake.head("x")
    with pytest.raises(LakeError, match="put failed"):
        lake.put("x", b"1")
