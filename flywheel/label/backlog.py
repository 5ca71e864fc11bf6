"""Deferred frames of earlier capture days come back on the newest day's review run.

A review run defers doubtful frames it cannot take (over the batch or budget, a pick from the
catalog while cheaper work remains, no evidence yet): they are never auto-accepted and stay in their
day's routes. Each later review run takes the ones still without a merged label or an open task
(its *backlog*) into the same queue, oldest capture day first, under the same batch cap and budget,
so people see them within a turn or two and the human cost per run stays what the caps allow.

Why the newest day's run and not re-runs of the earlier days' partitions: the caps and the budget
are per run; one run per earlier day would each spend a full batch and budget (the human cost would
grow with the backlog's days), and dividing one budget over several partition runs needs a
coordinator outside Dagster's partitions. One run keeps one ceiling, and the earlier days'
partitions stay as they were: their routes are not rewritten (a frame stays `deferred` there until
its answer merges), the answers are filed to the frame's own day by the corrections sensor (frame
-> day through the Depot index), and that day's merged_labels merges them, so nothing already merged
is touched.

    label/review/date=D/backlog.parquet   what day D's run took from earlier days: frame_id,
                                          origin_day, route (review | deferred), task_id, reason,
                                          deferred_reason (why its own day deferred it), review_day,
                                          review_run (the Dagster run)

A merged human label answered in a task of another day's run gets its provenance from this table
(`review_tasks.backlog_provenance`): which run routed it and why it had been deferred.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from edge_agent.contract.layout import validate_date
from edge_agent.lake import Lake
from flywheel.label.review_tasks import BACKLOG_FILE, backlog_schema, read_backlog, review_key
from flywheel.label.review_tasks import REVIEW as REVIEW_PREFIX
from flywheel.label.routing import DEFERRED, REVIEW


def review_days(lake: Lake) -> list[str]:
    """Capture days with a review folder (one delimiter listing), oldest first."""
    return [f.removeprefix("date=") for f in lake.list_folders(REVIEW_PREFIX) if f.startswith("date=")]


def pending(lake: Lake, day: str, lookback_days: int) -> list[dict[str, Any]]:
    """The backlog of `day`'s run: frames of the review days in the `lookback_days` before `day`
    routed `deferred` there, without a merged label (any source) or a held conflict of their day,
    and not in a task of another later run (that task is open or answered: never asked twice).
    Their pre-label rows (as their own day's prelabels wrote them), oldest day first, each with
    `origin_day` and `deferred_reason`."""
    from datetime import date, timedelta

    from flywheel.label.merge import read_conflicts, read_merged
    from flywheel.label.review_tasks import read_routes
    from flywheel.label.tables import read_prelabels

    if lookback_days <= 0:
        return []
    validate_date(day)
    first = (date.fromisoformat(day) - timedelta(days=lookback_days)).isoformat()
    days = [d for d in review_days(lake) if first <= d <= day]
    taken = {r["frame_id"] for d in days if d != day for r in read_backlog(lake, d) if r["task_id"]}
    out: list[dict[str, Any]] = []
    for d in (d for d in days if d < day):
        waiting = {r["frame_id"]: r["reason"] for r in read_routes(lake, d) if r["route"] == DEFERRED}
        if not waiting:
            continue
        settled = set(read_merged(lake, d).column("frame_id").to_pylist()) | set(read_conflicts(lake, d)[0])
        waiting = {f: why for f, why in waiting.items() if f not in settled and f not in taken}
        if not waiting:
            continue
        for row in read_prelabels(lake, d).to_pylist():
            if row["frame_id"] in waiting:
                out.append({**row, "origin_day": d, "deferred_reason": waiting[row["frame_id"]]})
    return out


def taken_later(lake: Lake, day: str, lookback_days: int) -> dict[str, str]:
    """frame -> why, for `day`'s frames that the runs of the `lookback_days` after it put in a task
    (a re-run of `day` leaves them to that task)."""
    from datetime import date, timedelta

    if lookback_days <= 0:
        return {}
    last = (date.fromisoformat(day) + timedelta(days=lookback_days)).isoformat()
    return {r["frame_id"]: f"in a task of {d}'s review run ({r['task_id']})"
            for d in review_days(lake) if day < d <= last
            for r in read_backlog(lake, d) if r["task_id"] and r["origin_day"] == day}


def write_backlog(lake: Lake, day: str, routes: Iterable[Mapping[str, Any]], run_id: str | None) -> int:
    """Record what `day`'s run did with its backlog. A re-run keeps the earlier records of frames
    it no longer sees (answered and merged since): their merged labels' provenance points here."""
    from flywheel.label.review_tasks import _put_parquet

    rows = [{**{k: r.get(k) for k in ("frame_id", "origin_day", "route", "task_id", "reason",
                                      "deferred_reason")}, "review_day": day, "review_run": run_id}
            for r in routes]
    seen = {r["frame_id"] for r in rows}
    kept = [r for r in read_backlog(lake, day) if r["frame_id"] not in seen and r["task_id"]]
    if rows or kept:
        _put_parquet(lake, review_key(day, BACKLOG_FILE),
                     sorted(rows + kept, key=lambda r: (r["origin_day"], r["frame_id"])), backlog_schema())
    return sum(1 for r in rows if r["route"] == REVIEW)


def origin_days(lake: Lake, day: str) -> list[str]:
    """The earlier days whose frames `day`'s run put in tasks (their answers are filed there)."""
    return sorted({r["origin_day"] for r in read_backlog(lake, day) if r["task_id"]})
