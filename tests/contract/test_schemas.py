"""Versioned schemas: good documents round-trip; bad ones name the field and the reason."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from edge_agent.contract import (
    ContractError,
    dump_document,
    parse_correction_batch,
    parse_release_manifest,
    parse_sidecar,
    parse_status_report,
)

SHA = hashlib.sha256(b"clip").hexdigest()
NOW = "2026-11-25T10:00:00Z"


def sidecar(**over: Any) -> dict[str, Any]:
    doc = {
        "schema": "flywheel.clip_sidecar", "schema_version": 1,
        "clip_id": SHA[:32], "device_id": "cart-1", "store_id": "store-a",
        "capture_date": "2026-11-25", "started_at": NOW, "model_version": "m-001",
        "rule_set_version": "r1", "agent_version": "0.1.0", "priority": 1,
        "clip": {"sha256": SHA, "size_bytes": 1234, "codec": "h264", "width": 320,
                 "height": 240, "fps": 10, "frame_count": 3, "duration_s": 0.3},
        "triggers": [{"rule": "all(motion,barcode)", "frame": 1, "value": True,
                      "signals": {"motion": 0.4, "barcode": "4006381333931"}}],
        "barcode_reads": [{"frame": 1, "format": "EAN13", "text": "4006381333931"}],
        "weight_series": [{"t": 0.0, "grams": 100.0}, {"t": 0.2, "grams": 450.5}],
        "location_series": [{"t": 0.0, "aisle": "A3", "x_m": 2.5}],
        "frames": [{"index": i, "t": i / 10, "prediction": "4006381333931", "confidence": 0.4}
                   for i in range(3)],
    }
    doc.update(over)
    return doc


def status(**over: Any) -> dict[str, Any]:
    doc = {
        "schema": "flywheel.status_report", "schema_version": 1, "device_id": "cart-1",
        "store_id": "store-a", "reported_at": NOW, "agent_version": "0.1.0",
        "model_version": "m-001", "rule_set_version": "r1", "window_s": 60,
        "frames_processed": 600, "fire_counts": {"motion": 12}, "captures": 3,
        "drops": {"queue_full": 1}, "spool_bytes": 10_000, "uploaded_clips": 2,
        "inference_latency_ms": {"p50": 4.1, "p99": 9.7},
        "ota": {"channel": "stable", "release_id": "r-7", "state": "active"},
    }
    doc.update(over)
    return doc


def manifest(**over: Any) -> dict[str, Any]:
    doc = {
        "schema": "flywheel.release_manifest", "schema_version": 1, "channel": "stable",
        "release_id": "rel-0007", "model_id": "m-002", "previous_model_id": "m-001",
        "created_at": NOW, "expires_at": "2026-12-25T10:00:00Z", "sequence": 7,
        "artifacts": [{"name": "model.onnx", "key": "models/m-002/model.onnx", "sha256": SHA,
                       "size_bytes": 99}],
        "rollout": {"stage": "canary", "percent": 5, "devices": ["cart-1"]},
    }
    doc.update(over)
    return doc


def corrections(**over: Any) -> dict[str, Any]:
    doc = {
        "schema": "flywheel.correction_batch", "schema_version": 1, "batch_id": "b-001",
        "tool": "label-studio", "exported_at": NOW,
        "corrections": [
            {"frame_id": "f-1", "action": "relabel", "sku": "4006381333931",
             "previous_sku": "5901234123457", "annotator": "ann-3", "corrected_at": NOW},
            {"frame_id": "f-2", "action": "set_box", "box": [1, 2, 30, 40], "annotator": "ann-3",
             "corrected_at": NOW},
        ],
    }
    doc.update(over)
    return doc


PARSERS = [(sidecar, parse_sidecar), (status, parse_status_report),
           (manifest, parse_release_manifest), (corrections, parse_correction_batch)]


@pytest.mark.parametrize(("make", "parse"), PARSERS)
def test_good_documents_roundtrip_canonically(make, parse) -> None:
    doc = parse(json.dumps(make()).encode())
    raw = dump_document(doc)
    assert parse(raw) == doc
    assert dump_document(parse(raw)) == raw  # canonical bytes: stable for hashes and signatures


@pytest.mark.parametrize(("make", "parse"), PARSERS)
def test_unknown_schema_version_is_named(make, parse) -> None:
    for version in (99, 0, "1", None):
        with pytest.raises(ContractError) as err:
            parse(make(schema_version=version))
        assert err.value.field == "schema_version" and "unknown version" in err.value.reason


@pytest.mark.parametrize(("make", "parse"), PARSERS)
def test_wrong_kind_and_extra_fields_are_rejected(make, parse) -> None:
    with pytest.raises(ContractError, match="schema: expected"):
        parse(make(schema="flywheel.something_else"))
    with pytest.raises(ContractError) as err:
        parse(make(surprise=1))
    assert err.value.field == "surprise"


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1,2]", b"\xff\xfe", b'{"schema": '])
def test_malformed_documents(raw: bytes) -> None:
    with pytest.raises(ContractError) as err:
        parse_sidecar(raw)
    assert err.value.field == "document"


def test_oversize_document_is_rejected_before_parsing() -> None:
    with pytest.raises(ContractError, match="larger than"):
        parse_sidecar(b" " * (16 * 1024 * 1024 + 1))


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda d: d["frames"][2].update(confidence=1.5), "frames.2.confidence", "less than or equal"),
        (lambda d: d.update(device_id="../etc"), "device_id", "path separator"),
        (lambda d: d.update(store_id=""), "store_id", "empty"),
        (lambda d: d["clip"].update(codec="vp9"), "clip.codec", "h264"),
        (lambda d: d["clip"].update(sha256="XYZ"), "clip.sha256", "pattern"),
        (lambda d: d.update(started_at="2026-11-25T10:00:00"), "started_at", "timezone"),
        (lambda d: d.update(triggers=[]), "triggers", "at least 1"),
        (lambda d: d["clip"].update(frame_count=4), "document", "frame_count"),
        (lambda d: d.update(clip_id="0" * 32), "document", "clip_id"),
        (lambda d: d["frames"][1].update(t=5.0), "document", "must not decrease"),
        (lambda d: d["barcode_reads"][0].update(frame=9), "document", "past the clip"),
        (lambda d: d.pop("model_version"), "model_version", "required"),
    ],
)
def test_bad_sidecars_name_field_and_reason(mutate, field: str, reason: str) -> None:
    doc = sidecar()
    mutate(doc)
    with pytest.raises(ContractError) as err:
        parse_sidecar(doc)
    assert err.value.field == field
    assert reason in err.value.reason


def test_bad_status_manifest_and_corrections() -> None:
    with pytest.raises(ContractError, match="drops.queue_full"):
        parse_status_report(status(drops={"queue_full": -1}))
    with pytest.raises(ContractError, match="ota.state"):
        parse_status_report(status(ota={"channel": "stable", "state": "exploded"}))
    with pytest.raises(ContractError, match="expires_at must be after"):
        parse_release_manifest(manifest(expires_at=(datetime(2026, 1, 1, tzinfo=UTC)
                                                    - timedelta(days=1)).isoformat()))
    with pytest.raises(ContractError, match="artifacts.0.key"):
        parse_release_manifest(manifest(artifacts=[{"name": "m.onnx", "key": "../../x",
                                                    "sha256": SHA, "size_bytes": 1}]))
    with pytest.raises(ContractError, match="rollout.percent"):
        parse_release_manifest(manifest(rollout={"stage": "full", "percent": 101}))
    bad = corrections()
    bad["corrections"][0].pop("sku")
    with pytest.raises(ContractError, match="relabel needs sku"):
        parse_correction_batch(bad)
    bad = corrections()
    bad["corrections"][1]["box"] = [30, 2, 1, 40]
    with pytest.raises(ContractError, match="x1 < x2"):
        parse_correction_batch(bad)
    bad["corrections"][1]["box"] = [-5, 2, 30, 40]  # past the frame's left edge: a bad export
    with pytest.raises(ContractError, match="corrections.1.box.0"):
        parse_correction_batch(bad)
