"""Test data for the review half: a REAL simulated fleet day (carts through real edge agents, real
H.264, Depot ingest, LanceDB index) and pre-labels with the PRELABELS_SCHEMA built from its ground
truth with controlled noise (a stand-in for the ensemble, whose own tests live in test_prelabel*).
Test code: it may read ground truth."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from edge_agent.lake import Lake

DAY = "2026-11-24"


@dataclass
class FleetDay:
    day: str
    frames: int  # Depot rows
    truth: dict[str, str | None]  # frame_id -> true SKU (None = empty)
    catalog: list[str]


def build_fleet_day(lake: Lake, work: Path, day: str = DAY, *, carts: int = 2, minutes: float = 0.5,
                    seed: int = 3) -> FleetDay:
    """The Label stage's shared fleet day (benchmarks/label_fleet.py), indexed in LanceDB."""
    from benchmarks.label_fleet import build_fleet_day as fleet_day
    from flywheel.depot.embed import load_encoder
    from flywheel.depot.index import index_day
    from flywheel.sim import default_world

    fd = fleet_day(lake, work, carts=carts, minutes=minutes, seed=seed, day=day)
    index_day(lake, day, load_encoder({"kind": "descriptor", "version": 1}, lake))
    truth = {f: (None if t.is_empty else t.sku) for f, t in fd.truth.items()}
    return FleetDay(day=day, frames=fd.frames, truth=truth,
                    catalog=sorted(p.ean for p in default_world(seed, 3).catalog.products))


def noisy_prelabels(lake: Lake, fd: FleetDay, *, seed: int = 0, wrong: float = 0.08, abstain: float = 0.1,
                    keep_empty: float = 0.05, sure_wrong: int = 0) -> int:
    """Pre-labels of the kept (non-empty, plus a few empty) frames: right and confident mostly, some
    abstentions, some confidently wrong (what the audit must catch), some doubtful. `sure_wrong`
    item frames get a wrong label at 0.999 that routing auto-accepts while the weight step rules it
    out (the load cell names the true SKU among its candidates): the audit's weak truth catches
    them whatever the size of the day (a fleet day of a few dozen item frames is too small for the
    audit's embedding model, which needs AuditConfig.min_frames)."""
    from flywheel.depot.ingest import read_frames
    from flywheel.label.tables import labeler_versions_json, write_prelabels

    rng = random.Random(seed)
    meta = read_frames(lake, fd.day, columns=["frame_id", "clip_id", "date", "store_id", "device_id",
                                               "frame_index", "t_s"]).to_pylist()
    rows = []
    for m in meta:
        sku = fd.truth[m["frame_id"]]
        if sku is None and rng.random() > keep_empty:
            continue  # dropped by the empty filter
        u = rng.random()
        if u < abstain:
            label, conf, dis = None, 0.0, False
        elif u < abstain + wrong or sku is None:
            label, conf, dis = rng.choice([s for s in fd.catalog if s != sku]), rng.uniform(0.5, 0.99), True
        else:
            label, conf, dis = sku, rng.choice([rng.uniform(0.91, 0.999), rng.uniform(0.4, 0.9)]), False
        rows.append({**m, "label": label, "confidence": conf,
                     "votes": [{"labeler": "teacher", "version": "t1", "label": label, "confidence": conf,
                                "evidence": "test"}],
                     "labeler_versions": labeler_versions_json({"teacher": "t1"}),
                     "disagreement": dis and rng.random() < 0.5, "barcode_mismatch": False})
    items = [r for r in rows if fd.truth[r["frame_id"]] is not None]
    for r in rng.sample(items, min(sure_wrong, len(items))):
        sku = fd.truth[r["frame_id"]]
        label = rng.choice([s for s in fd.catalog if s != sku])
        weight = {"labeler": "weight", "version": "w1", "label": None, "confidence": 0.0,
                  "evidence": f"abstain: ambiguous: step 300 g at t=0.00s; candidates {sku},{fd.catalog[0]}",
                  "candidates": [sku, fd.catalog[0]]}
        r.update(label=label, confidence=0.999, disagreement=False,
                 votes=[{**r["votes"][0], "label": label, "confidence": 0.999}, weight])
    return write_prelabels(lake, fd.day, rows)
