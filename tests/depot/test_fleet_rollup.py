"""The daily fleet rollup and its checks: silent devices and devices that drop too much."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from assets.depot import capture_days, depot_fleet_rollup
from edge_agent.contract.layout import status_key
from flywheel.depot.fleet_rollup import list_devices, rollup_day
from flywheel.depot.ingest import ingest_day
from resources.lake import LocalLakeResource
from tests.support.clips import land_clip, status_report

DAY = "2026-11-24"
START = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def _fleet(lake) -> None:
    # cart-ok reports all day; cart-quiet stopped at 10:00; cart-drops reports but drops a lot;
    # cart-old reported two days earlier only (still part of the fleet: silent)
    for i in range(0, 16 * 12):  # every 5 minutes, 08:00 -> 24:00
        at = START + timedelta(minutes=5 * i)
        lake.put(status_key("cart-ok", at), status_report(device_id="cart-ok", store_id="store-a", at=at))
        lake.put(status_key("cart-drops", at), status_report(
            device_id="cart-drops", store_id="store-b", at=at, captures=8, drops={"spool_cap": 4},
            model_version="m-0002"))
        if at < START + timedelta(hours=2):
            lake.put(status_key("cart-quiet", at), status_report(device_id="cart-quiet", store_id="store-a",
                                                                 at=at))
    old = START - timedelta(days=2)
    lake.put(status_key("cart-old", old), status_report(device_id="cart-old", store_id="store-c", at=old))
    # a report of the next day must not count
    nxt = START + timedelta(days=1, hours=1)
    lake.put(status_key("cart-ok", nxt), status_report(device_id="cart-ok", store_id="store-a", at=nxt,
                                                       captures=1000))


def test_rollup_counts_and_flags(local_lake) -> None:
    _fleet(local_lake)
    land_clip(local_lake, seed=1, device_id="cart-ok")
    ingest_day(local_lake, DAY)
    assert list_devices(local_lake) == ["cart-drops", "cart-ok", "cart-old", "cart-quiet"]
    r = rollup_day(local_lake, DAY, now=START + timedelta(days=3))
    by = {d.device_id: d for d in r.devices}
    assert set(by) == {"cart-ok", "cart-quiet", "cart-drops", "cart-old"}
    ok = by["cart-ok"]
    assert ok.reports == 192 and ok.captures == 1920 and ok.clips_landed == 1
    assert ok.fires["all(motion,barcode)"] == 1920 and ok.model_versions == {"m-0001"}
    assert by["cart-drops"].drops["spool_cap"] == 768 and abs(by["cart-drops"].drop_rate - 1 / 3) < 1e-9
    assert sorted(r.silent) == ["cart-old", "cart-quiet"]
    assert r.dropping == ["cart-drops"]
    stores = {s["store_id"]: s for s in r.by_store()}
    assert stores["store-b"]["drops"] == 768 and stores["store-a"]["devices"] == 2


def test_rollup_asset_reports_checks_with_actual_and_threshold(local_lake) -> None:
    _fleet(local_lake)
    lake_res = LocalLakeResource(root=str(local_lake.local_path()))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(capture_days.name, [DAY])
        result = dg.materialize([depot_fleet_rollup], partition_key=DAY, instance=instance,
                                resources={"lake": lake_res})
    assert result.success
    md = result.asset_materializations_for_node("depot_fleet_rollup")[0].metadata
    assert md["devices"].value == 4 and md["drops_by_cause"].value == {"spool_cap": 768}
    assert md["model_versions_in_field"].value == {"m-0001": 2, "m-0002": 1}
    assert md["chart"].value.startswith("![fleet 2026-11-24](data:image/png;base64,")
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    rep = checks["devices_reporting"]
    assert not rep.passed and rep.metadata["actual"].value == 2 and rep.metadata["threshold"].value == 0
    drop = checks["drop_rate"]
    assert not drop.passed and drop.metadata["threshold"].value == 0.1
    assert abs(drop.metadata["actual"].value - 1 / 3) < 1e-6
    assert json.loads(json.dumps(drop.metadata["devices"].value)) == ["cart-drops"]


def test_rollup_report_aggregates_and_renders_itself(local_lake) -> None:
    """The asset only forwards: totals and tables are the report's own (domain, no Dagster)."""
    _fleet(local_lake)
    r = rollup_day(local_lake, DAY, now=START + timedelta(days=3))
    totals = r.totals()
    assert totals["drops"] == {"spool_cap": 768}
    assert totals["model_versions"] == {"m-0001": 2, "m-0002": 1}
    assert r.by_store_markdown().splitlines()[0] == (
        "| store_id | devices | captures | drops | clips_landed | uploaded_bytes |")
    flagged = r.flagged_markdown()
    assert "cart-drops" in flagged and len(flagged.splitlines()) == 2 + len(set(r.silent) | set(r.dropping))
