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
              near_duplicate_distance: float | None = None, run_id: str | None = None
              ) -> tuple[Routing, dict[str, str], str]:
    """Route the day's pre-labels (skipping frames humans settled, conflicts and human labels the
    load cell rules out first; a frame nothing narrowed gets the short list of its shelf) and the
    backlog of earlier days' deferred frames (`config.backlog_days`; flywheel.label.backlog), group
    near-duplicates through the Depot's LanceDB index when there is one, and write the queue, its
    exports and the backlog's record (with `run_id`, the review run). Returns (routing, written
    keys, how frames were grouped)."""
    import dataclasses

    from flywheel.depot.index import open_table
    from flywheel.label.backlog import pending, taken_later, write_backlog
    from flywheel.label.box_requests import ask_for_boxes
    from flywheel.label.catalog import read_catalog
    from flywheel.label.merge import read_conflicts, read_merged
    from flywheel.label.routing import lancedb_groups, load_cell_rechecks, route_day, singletons
    from flywheel.label.shelf import fill_lists, human_shelf_prior
    from flywheel.label.tables import read_prelabels

    pre = read_prelabels(lake, day).to_pylist()
    prior, shelves = human_shelf_prior(lake, day)
    category_of = {p.ean: p.category for p in read_catalog(lake)}
    pre = fill_lists(pre, shelves, prior, category_of)  # frames nothing narrowed: their shelf's list
    late = pending(lake, day, config.backlog_days)
    late_days = sorted({r["origin_day"] for r in late})
    for d in late_days:  # their shelf lists from today's answers on
        _, late_shelves = human_shelf_prior(lake, d)
        rows = fill_lists([r for r in late if r["origin_day"] == d], late_shelves, prior, category_of)
        late = [r for r in late if r["origin_day"] != d] + rows
    catalog = catalog_of(lake, pre)
    config = dataclasses.replace(config, n_classes=max(1, len(catalog)))
    merged = read_merged(lake, day)
    humans = {r["frame_id"]: (r["label"], r["task_id"])
              for r in merged.select(["frame_id", "label", "source", "task_id"]).to_pylist()
              if r["source"] == "human"}
    try:
        table, _ = open_table(lake, location)
        spans = clip_spans(lake, day, {r["clip_id"] for r in pre})
        for d in late_days:
            spans.update(clip_spans(lake, d, {r["clip_id"] for r in late if r["origin_day"] == d}))
        group = lancedb_groups(table, near_duplicate_distance, spans=spans)
        v2 = sum(s is not None for s in spans.values())
        grouping = f"lancedb, one item per task ({v2}/{len(spans)} clips with insertion spans)"
    except LookupError:  # no index yet: every frame is its own task
        group, grouping = singletons, "off (no Depot index)"
    conflicts, why = read_conflicts(lake, day)
    routing = route_day(day, pre, config, human_labelled=humans, conflicts=conflicts, conflict_reasons=why,
                        group=group, rechecks=load_cell_rechecks(pre, humans),
                        audited=sum(1 for _, task in humans.values() if (task or "").startswith(f"{AUDIT}-")),
                        backlog=late, elsewhere=taken_later(lake, day, config.backlog_days))
    frames = task_frames(lake, day, routing)
    if frames is None:
        if routing.tasks:
            raise LookupError(f"no Depot frames for {day}: ingest the day first")
        return routing, {}, grouping
    ask_for_boxes(lake, routing, frames, config.max_boxes, config.time.extreme_click_s)
    keys = write_review(lake, day, routing, frames, catalog)
    write_backlog(lake, day, routing.backlog, run_id)
    return routing, keys, grouping


def task_frames(lake: Lake, day: str, routing: Routing) -> Any:
    """The Depot frames the tasks show: the day's, and the leaders of the backlog's tasks from
    their own days (None: the day has no frames)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from flywheel.depot.ingest import read_frames

    cols = ["frame_id", "width", "height", "image_jpeg"]
    frames = read_frames(lake, day, columns=cols)
    if frames is None:
        return None
    leaders = {t.frame_ids[0] for t in routing.tasks}
    late: dict[str, set[str]] = {}
    for r in routing.backlog:
        if r["task_id"] and r["frame_id"] in leaders:
            late.setdefault(r["origin_day"], set()).add(r["frame_id"])
    parts = [frames]
    for d, ids in sorted(late.items()):
        t = read_frames(lake, d, columns=cols)
        if t is not None:
            parts.append(t.filter(pc.is_in(t.column("frame_id"), pa.array(sorted(ids)))))
    return pa.concat_tables(parts) if len(parts) > 1 else frames


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
