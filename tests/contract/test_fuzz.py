"""Every contract parser, fed anything: it returns a document or raises the contract's own error
(ContractError naming a field), never anything else; impossible values are refused."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.contract.errors import ContractError
from edge_agent.contract.layout import (
    arrival_key,
    parse_arrival_key,
    parse_clip_key,
    parse_timestamp_id,
    validate_date,
)
from edge_agent.contract.schemas import (
    parse_correction_batch,
    parse_release_manifest,
    parse_sidecar,
    parse_status_report,
)
from tests.support.clips import build_clip, insertion_summary, status_report

PARSERS = [parse_sidecar, parse_status_report, parse_release_manifest, parse_correction_batch]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_SIDECAR = json.loads(build_clip(seed=1, n_frames=8, trigger_frames=(3,)).sidecar_bytes)
_SIDECAR_V2 = json.loads(build_clip(seed=2, n_frames=8, trigger_frames=(3,), insertions=[
    insertion_summary(1, 4, confidence=0.4),
    insertion_summary(5, 7, source="barcode", barcode="4006381333931", confidence=1.0)]).sidecar_bytes)
_STATUS = json.loads(status_report(device_id="cart-1", store_id="store-a",
                                   at=datetime(2026, 11, 24, tzinfo=UTC)))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


def _only_contract_errors(parse, raw) -> None:
    try:
        parse(raw)
    except ContractError as e:
        assert e.field and e.reason  # names what is wrong


@FUZZ
@given(raw=st.binary(max_size=300), which=st.sampled_from(PARSERS))
def test_arbitrary_bytes_give_a_document_or_a_contract_error(raw: bytes, which) -> None:
    _only_contract_errors(which, raw)


@FUZZ
@given(doc=json_values, which=st.sampled_from(PARSERS))
def test_arbitrary_json_gives_a_document_or_a_contract_error(doc, which) -> None:
    _only_contract_errors(which, json.dumps(doc, allow_nan=True).encode())


def _paths(doc, prefix=()):
    """Every (path) into a JSON document, so a mutation can hit any field at any depth."""
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*prefix, i))


def _replace(doc, path, value):
    if not path:
        return value
    out = json.loads(json.dumps(doc))
    node = out
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return out


@FUZZ
@given(data=st.data(), value=json_values)
def test_a_valid_document_with_any_field_replaced_by_anything(data, value) -> None:
    base, parse = data.draw(st.sampled_from([(_SIDECAR, parse_sidecar), (_SIDECAR_V2, parse_sidecar),
                                             (_STATUS, parse_status_report)]))
    path = data.draw(st.sampled_from(list(_paths(base))))
    _only_contract_errors(parse, json.dumps(_replace(base, path, value), allow_nan=True).encode())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("path", [("frames", 2, "confidence"), ("weight_series", 0, "grams"),
                                  ("location_series", 0, "x_m"), ("clip", "fps"),
                                  ("triggers", 0, "value"), ("triggers", 0, "signals", "motion")])
def test_non_finite_floats_are_refused_wherever_a_float_is(path, bad) -> None:
    raw = json.dumps(_replace(_SIDECAR, path, bad), allow_nan=True).encode()  # NaN / Infinity literals
    assert b"NaN" in raw or b"Infinity" in raw
    with pytest.raises(ContractError) as e:
        parse_sidecar(raw)
    assert e.value.field.startswith(path[0])
    status = _replace(_STATUS, ("inference_latency_ms", "p99"), bad)
    with pytest.raises(ContractError, match="inference_latency_ms"):
        parse_status_report(json.dumps(status, allow_nan=True))


@pytest.mark.parametrize("raw", [b"[" * 100_000, b'{"a":' * 100_000, b"1" * 10_000])
@pytest.mark.parametrize("which", PARSERS)
def test_hostile_json_is_a_contract_error(raw: bytes, which) -> None:
    with pytest.raises(ContractError, match="document"):
        which(raw)


def test_documents_are_utf8() -> None:
    text = json.dumps(_SIDECAR)
    assert parse_sidecar(text.encode()).clip_id == _SIDECAR["clip_id"]
    for encoding in ("utf-16", "utf-32"):
        with pytest.raises(ContractError, match="not valid JSON"):
            parse_sidecar(text.encode(encoding))


def test_a_sidecar_nested_deep_inside_a_field_is_a_contract_error() -> None:
    text = json.dumps(_replace(_SIDECAR, ("triggers", 0, "signals", "motion"), "@DEEP@"))
    for depth in (500, 5000, 50_000):
        with pytest.raises(ContractError):
            parse_sidecar(text.replace('"@DEEP@"', "[" * depth + "1.0" + "]" * depth))


@pytest.mark.parametrize("bad", ["2026-13-01", "2026-02-30", "2026-00-10", "٢٠٢٦-١١-٢٤", "２０２６-11-24",
                                 "2026-11-24\n", " 2026-11-24", "20261124"])
def test_dates_are_ascii_calendar_dates(bad: str) -> None:
    with pytest.raises(ContractError):
        validate_date(bad)


@pytest.mark.parametrize("ts", ["20261399T999999.000000Z", "20260230T000000.000000Z",
                                "20261124T246000.000000Z", "２0261124T100000.000000Z"])
def test_impossible_arrival_timestamps_are_refused(ts: str) -> None:
    with pytest.raises(ContractError):
        parse_timestamp_id(ts)
    good = arrival_key(datetime(2026, 11, 24, 10, tzinfo=UTC), "2026-11-24", "store-a", "cart-1", "a" * 32)
    bad_key = good.replace(good.rsplit("/", 1)[1].split("~")[0], ts)
    with pytest.raises(ContractError, match="timestamp"):
        parse_arrival_key(bad_key)


key_text = st.lists(st.sampled_from(list("abz09.~-_=/\\#\x00\x7f ٢２") + [
    "date=", "landing/", "clips/", "arrivals/", ".mp4", ".json", "2026-11-24", "20261124T100000.000000Z"]),
    max_size=20).map("".join)


@FUZZ
@given(key=key_text)
def test_key_parsers_give_a_key_or_a_contract_error(key: str) -> None:
    for parse in (parse_clip_key, parse_arrival_key):
        try:
            parsed = parse(key)
        except ContractError:
            continue
        assert parsed is not None


def test_timestamps_round_trip() -> None:
    at = datetime(2026, 11, 24, 10, 15, 0, 123456, tzinfo=UTC)
    assert parse_timestamp_id("20261124T101500.123456Z") == at
    assert math.isfinite(at.timestamp())
