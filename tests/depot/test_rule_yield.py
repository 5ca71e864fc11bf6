"""Per-rule yield (issue 10, point 7): labels accepted per MB uploaded, per capture rule and rule
set, from real ingested clips joined with merged labels; materialized as the `rule_yield` asset."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from assets.depot import rule_yield
from flywheel.depot.ingest import ingest_day, read_frames
from flywheel.label.merge import MergeResult, write_merged
from flywheel.release.rule_yield import ALL, rule_yield_day
from resources.lake import LocalLakeResource
from tests.support.clips import build_clip, land, land_clip

DAY = "2026-11-24"


def _merge(lake, labels: dict[str, str | None]) -> None:
    rows = [{"frame_id": f, "label": lab, "source": "auto", "confidence": 0.99, "annotator": None,
             "tool": "prelabel-ensemble", "task_id": None, "annotation_id": None, "corrected_at": None,
             "previous_label": None, "route": "auto"} for f, lab in sorted(labels.items())]
    write_merged(lake, DAY, MergeResult(rows=rows, conflicts=[]))


def test_rule_yield_joins_merged_labels_with_the_rules_that_fired(local_lake):
    # campaign rule: two clips, every sampled frame labelled; motion rule: one clip, one label;
    # a clip both rules fired on counts for each
    camp = [land_clip(local_lake, seed=s, device_id=f"cart-{s}", rule="campaign_sku7") for s in (1, 2)]
    motion = land_clip(local_lake, seed=3, device_id="cart-3", rule="motion")
    both = build_clip(seed=4, device_id="cart-4", rule="motion", trigger_frames=(8, 10))
    doc = json.loads(both.sidecar_bytes)
    doc["triggers"][1]["rule"] = "campaign_sku7"
    both_sidecar = json.dumps(doc).encode()
    land(local_lake, both, sidecar_bytes=both_sidecar)
    ingest_day(local_lake, DAY)
    frames = read_frames(local_lake, DAY, ["frame_id", "clip_id"]).to_pylist()
    by_clip: dict[str, list[str]] = {}
    for r in frames:
        by_clip.setdefault(r["clip_id"], []).append(r["frame_id"])
    labels = {f: "sku-7" for c in camp for f in by_clip[c.clip_id]}
    labels[by_clip[motion.clip_id][0]] = None  # accepted as "no product"
    labels[by_clip[both.clip_id][0]] = "sku-1"
    _merge(local_lake, labels)

    rows = rule_yield_day(local_lake, DAY, labels)
    got = {y.rule: y for y in rows}
    size = {c.clip_id: len(c.clip_bytes) + len(c.sidecar_bytes) for c in (*camp, motion)}
    size[both.clip_id] = len(both.clip_bytes) + len(both_sidecar)
    assert got["campaign_sku7"].clips == 3  # its two clips, and the clip both rules fired on
    assert got["campaign_sku7"].bytes_uploaded == sum(size[c.clip_id] for c in (*camp, both))
    assert got["campaign_sku7"].labels_accepted == sum(len(by_clip[c.clip_id]) for c in camp) + 1
    assert got["motion"].clips == 2 and got["motion"].labels_accepted == 2 and got["motion"].item_labels == 1
    assert got["campaign_sku7"].labels_per_mb == pytest.approx(
        got["campaign_sku7"].labels_accepted / (got["campaign_sku7"].bytes_uploaded / 1e6))
    assert [y.rule for y in rows] == ["campaign_sku7", "motion", ALL]  # best first, total last
    assert got[ALL].clips == 4 and got[ALL].labels_accepted == len(labels)
    assert got[ALL].bytes_uploaded == sum(size.values())
    assert all(y.rule_set_version == "rules-1" for y in rows[:-1])

    # the asset: metadata a person reads in the UI, and the table in the lake
    res = LocalLakeResource(root=str(local_lake.local_path()))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("capture_day", [DAY])
    result = dg.materialize([rule_yield], partition_key=DAY, resources={"lake": res}, instance=instance,
                            selection=[rule_yield])
    assert result.success
    md = result.asset_materializations_for_node("rule_yield")[0].metadata
    assert md["rules"].value == 2 and md["best_rule"].value == "campaign_sku7"
    assert md["labels_accepted"].value == len(labels)
    assert md["labels_per_mb_by_rule"].value["motion @ rules-1"] == round(got["motion"].labels_per_mb, 3)
    assert "| `campaign_sku7` | rules-1 | 3 |" in md["by_rule"].value
    assert local_lake.exists(f"depot/yield/date={DAY}/rule_yield.json")
