"""Path safety and the lake layout: every id that becomes part of a key is checked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from edge_agent.contract import ContractError, layout, validate_id, validate_key


@pytest.mark.parametrize("good", ["cart-0001", "store_A", "m.v1.2", "a", "x" * 128])
def test_safe_ids_pass(good: str) -> None:
    assert validate_id(good) == good


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("", "empty"),
        ("..", "'..'"),
        ("a..b", "'..'"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("dev\x00ice", "control character"),
        ("dev\nice", "control character"),
        ("x" * 129, "longer than 128"),
        (".hidden", "must start with"),
        ("-flag", "must start with"),
        ("sp ace", "must start with"),
        ("naïve", "must start with"),
        (42, "must be a string"),
    ],
)
def test_unsafe_ids_are_rejected_with_the_field_named(bad: object, reason: str) -> None:
    with pytest.raises(ContractError) as err:
        validate_id(bad, "device_id")
    assert err.value.field == "device_id"
    assert reason in err.value.reason


@pytest.mark.parametrize("bad", ["", "/a", "a//b", "a/../b", "./a", "a/", "a\\b", "a\x7f", "a#1"])
def test_unsafe_keys_are_rejected(bad: str) -> None:
    with pytest.raises(ContractError):
        validate_key(bad)


def test_clip_keys_roundtrip() -> None:
    cid = layout.clip_id_for_bytes(b"some h264 bytes")
    assert len(cid) == 32
    ck = layout.clip_key("2026-11-25", "store-a", "cart-7", cid)
    sk = layout.sidecar_key("2026-11-25", "store-a", "cart-7", cid)
    assert ck == f"landing/clips/device=cart-7/date=2026-11-25/store=store-a/{cid}.mp4"
    assert sk == ck[:-4] + ".json"
    assert ck.startswith(layout.device_write_prefixes("cart-7")[0])  # a prefix rule can own it
    parsed = layout.parse_clip_key(sk)
    assert (parsed.date, parsed.store_id, parsed.device_id, parsed.clip_id, parsed.kind, parsed.layout) == (
        "2026-11-25", "store-a", "cart-7", cid, "sidecar", 2)
    assert parsed.clip_key == ck and layout.parse_clip_key(ck).kind == "clip"


def test_layout_1_keys_still_parse_and_rebuild() -> None:
    """Clips landed before the device-first layout keep their keys: parsed, rebuilt, and their
    arrival markers (no layout tag) resolve to them."""
    from datetime import UTC, datetime

    old = "landing/clips/date=2026-11-25/store=store-a/device=cart-7/abc.json"
    parsed = layout.parse_clip_key(old)
    assert (parsed.device_id, parsed.layout) == ("cart-7", 1) and parsed.sidecar_key == old
    at = datetime(2026, 11, 25, 10, tzinfo=UTC)
    m1 = layout.arrival_key(at, "2026-11-25", "store-a", "cart-7", "abc", layout=1)
    m2 = layout.arrival_key(at, "2026-11-25", "store-a", "cart-7", "abc")
    assert layout.parse_arrival_key(m1)[1].sidecar_key == old
    assert layout.parse_arrival_key(m2)[1].sidecar_key == (
        "landing/clips/device=cart-7/date=2026-11-25/store=store-a/abc.json")


@pytest.mark.parametrize(
    "key",
    [
        "landing/clips/date=2026-13-01/store=s/device=d/c.mp4",  # not a date
        "landing/clips/date=2026-11-25/store=../device=d/c.mp4",
        "landing/clips/date=2026-11-25/store=s/device=d/c.txt",
        "landing/clips/date=2026-11-25/store=s/device=d/sub/c.mp4",
        "landing/clips/date=2026-11-25/store=s/device=d..x/c.mp4",
        "landing/clips/device=d/date=2026-13-01/store=s/c.mp4",
        "landing/clips/device=../date=2026-11-25/store=s/c.mp4",
        "landing/clips/device=d/store=s/date=2026-11-25/c.mp4",
        "landing/status/device=d/1.json",
    ],
)
def test_bad_clip_keys_are_rejected(key: str) -> None:
    with pytest.raises(ContractError):
        layout.parse_clip_key(key)


def test_builders_reject_hostile_ids() -> None:
    with pytest.raises(ContractError, match="store_id"):
        layout.clip_key("2026-11-25", "../other", "d", "c")
    with pytest.raises(ContractError, match="channel"):
        layout.release_manifest_key("stable/../../x")
    with pytest.raises(ContractError, match="date"):
        layout.clip_prefix("25/11/2026", "s", "d")


def test_status_keys_sort_by_time_across_timezones() -> None:
    t0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    later_in_other_tz = (t0 + timedelta(seconds=1)).astimezone(timezone(timedelta(hours=-8)))
    k0, k1 = layout.status_key("cart-1", t0), layout.status_key("cart-1", later_in_other_tz)
    assert k0 < k1 and k0.startswith("landing/status/device=cart-1/20261125T100000")
    with pytest.raises(ContractError, match="timezone"):
        layout.status_key("cart-1", datetime(2026, 11, 25))
