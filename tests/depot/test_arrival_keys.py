"""The arrival-marker keys the Depot's sensor relies on (contract: edge_agent/contract/layout.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from edge_agent.contract.errors import ContractError
from edge_agent.contract.layout import arrival_key, parse_arrival_key

AT = datetime(2026, 11, 25, 10, 15, 30, 123456, tzinfo=UTC)


def test_arrival_key_round_trips_and_sorts_by_upload_time() -> None:
    key = arrival_key(AT, "2026-11-24", "store-a", "cart-1", "a" * 32)
    assert key == ("landing/arrivals/20261125/1015/20261125T101530.123456Z~2026-11-24~store-a~cart-1~"
                   + "a" * 32 + "~L2")
    ts, ck = parse_arrival_key(key)
    assert ts == "20261125T101530.123456Z"
    assert (ck.date, ck.store_id, ck.device_id, ck.clip_id, ck.kind) == (
        "2026-11-24", "store-a", "cart-1", "a" * 32, "sidecar")
    later = arrival_key(AT + timedelta(microseconds=1), "2026-01-01", "a", "a", "0" * 32)
    assert later > key  # upload time decides the order, not the clip's day or ids
    # a non-UTC clock is normalised to UTC
    local = AT.astimezone(timezone(timedelta(hours=2)))
    assert arrival_key(local, "2026-11-24", "store-a", "cart-1", "a" * 32) == key


@pytest.mark.parametrize("bad", [
    "landing/arrivals/20261125/1015/20261125T101530.123456Z~2026-11-24~store-a~cart..1~abc",
    "landing/arrivals/20261125/1015/20261125T101530.123456Z~2026-11-24~store-a~abc",
    "landing/arrivals/20261125/1015/20261125T101530.123456Z~2026-11-24~store-a~cart-1~abc~L3",
    "landing/arrivals/20261125/1015/garbage~2026-11-24~store-a~cart-1~abc",
    "landing/clips/20261125T101530.123456Z~2026-11-24~store-a~cart-1~abc",
])
def test_malformed_arrival_keys_are_refused(bad: str) -> None:
    with pytest.raises(ContractError):
        parse_arrival_key(bad)


def test_arrival_key_refuses_unsafe_ids() -> None:
    with pytest.raises(ContractError):
        arrival_key(AT, "2026-11-24", "store/a", "cart-1", "abc")
    with pytest.raises(ContractError):
        arrival_key(AT.replace(tzinfo=None), "2026-11-24", "store-a", "cart-1", "abc")
