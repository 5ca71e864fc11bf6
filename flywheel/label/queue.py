"""The day's review queue: route the pre-labels, group near-duplicates, write tasks and exports.

It reads what humans already settled (merge) and writes the review tables (review_tasks), so it sits
above both: merge reads the routes this writes, without an import cycle.
"""

from __future__ import annotations

from typing import Any

from edge_agent.lake import Lake
from flywheel.label.review_tasks import catalog_of, write_review
from flywheel.label.routing import AUDIT, Routing


def queue_day(lake: Lake, day: str, config: Any, location: Any = None,
              near_duplicate_distance: float | None = None) -> tuple[Routing, dict[str, str], str]:
    """Route the day's pre-labels (skipping frames humans settled, conflicts and human labels the
    load cell rules out first; a frame nothing narrowed gets the short list of its shelf), group
    near-duplicates through the Depot's LanceDB index when there is one, and write the queue and its
    exports. Returns (routing, written keys, how frames were grouped)."""
    import dataclasses

    from flywheel.depot.index import open_table
    from flywheel.depot.ingest import read_frames
    from flywheel.label.catalog import read_catalog
    from flywheel.label.merge import read_conflicts, read_merged
    from flywheel.label.routing import lancedb_groups, load_cell_rechecks, route_day, singletons
    from flywheel.label.shelf import fill_lists, human_shelf_prior
    from flywheel.label.tables import read_prelabels

    pre = read_prelabels(lake, day).to_pylist()
    prior, shelves = human_shelf_prior(lake, day)
    category_of = {p.ean: p.category for p in read_catalog(lake)}
    pre = fill_lists(pre, shelves, prior, category_of)  # frames nothing narrowed: their shelf's list
    catalog = catalog_of(lake, pre)
    config = dataclasses.replace(config, n_classes=max(1, len(catalog)))
    merged = read_merged(lake, day)
    humans = {r["frame_id"]: (r["label"], r["task_id"])
              for r in merged.select(["frame_id", "label", "source", "task_id"]).to_pylist()
              if r["source"] == "human"}
    try:
        table, _ = open_table(lake, location)
        spans = clip_spans(lake, day, {r["clip_id"] for r in pre})
        group = lancedb_groups(table, near_duplicate_distance, spans=spans)
        v2 = sum(s is not None for s in spans.values())
        grouping = f"lancedb, one item per task ({v2}/{len(spans)} clips with insertion spans)"
    except LookupError:  # no index yet: every frame is its own task
        group, grouping = singletons, "off (no Depot index)"
    conflicts, why = read_conflicts(lake, day)
    routing = route_day(day, pre, config, human_labelled=humans, conflicts=conflicts, conflict_reasons=why,
                        group=group, rechecks=load_cell_rechecks(pre, humans),
                        audited=sum(1 for _, task in humans.values() if (task or "").startswith(f"{AUDIT}-")))
    frames = read_frames(lake, day, columns=["frame_id", "width", "height", "image_jpeg"])
    if frames is None:
        if routing.tasks:
            raise LookupError(f"no Depot frames for {day}: ingest the day first")
        return routing, {}, grouping
    return routing, write_review(lake, day, routing, frames, catalog), grouping


def clip_spans(lake: Lake, day: str, clip_ids: set[str]) -> dict[str, list[tuple[int, int]] | None]:
    """clip id -> the device's insertion spans from its sidecar (None: V1 or unreadable)."""
    from flywheel.depot.ingest import read_frames
    from flywheel.label.clips import read_sidecars
    from flywheel.label.grouping import insertion_spans

    frames = read_frames(lake, day, columns=["clip_id", "clip_key"])
    keys = {} if frames is None else {r["clip_id"]: r["clip_key"] for r in frames.to_pylist()
                                      if r["clip_id"] in clip_ids}
    sidecars, _ = read_sidecars(lake, keys)
    return {c: None for c in clip_ids} | insertion_spans(sidecars)
