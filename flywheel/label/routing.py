"""Confidence routing: which pre-labelled frames a human sees this iteration.

Every kept frame gets one route:

- `review`   doubtful (abstained, vision contradicts the barcode, labelers disagree, or confidence
             below the accept threshold): in a task, most doubtful first, up to `class_quota` tasks
             per predicted class, round-robin over the classes, at most `max_review_tasks` tasks,
             while the budget lasts;
- `conflict` two humans disagreed on it, or the frame itself rules a human's label out (a slip): back
             in the queue ahead of everything else, the task saying which;
- `audit`    auto-accepted, but drawn into the audit sample (a count sized for the width of the
             error rate's confidence interval, stable per frame and seed), so the auto-label error
             rate can be estimated from what the humans answer;
- `auto`     accepted as pre-labelled (confident, and no labeler disagrees, unless the barcode read
             and the load cell both vouch for the label: `trust_sensors`);
- `deferred` doubtful but over this iteration's class quota, batch or budget, expected to cost a
             pick from the catalog (`max_task_s`), or without any evidence while other doubtful
             items remain (their answers teach its shelf list): never auto-accepted, it stays in
             the day's routes with its reason and comes back on the next review run of a later
             day (the backlog: `backlog` rows, oldest day first, ahead of that day's doubtful work
             and under the same batch and budget; flywheel.label.backlog), or on a re-run or
             backfill of its own day;
- `human`    already has a human label: not queued again.

Human work per iteration therefore stops growing with the fleet: the audit is a count, the
doubtful work is at most `max_review_tasks` tasks (and classes x `class_quota` when a quota is set),
and the budget is a ceiling over both.

Near-duplicate frames of one session (a clip) are grouped by the caller's `group` function (LanceDB
similarity, see `lancedb_groups`) and form one task, labelled once. This module reads pre-labels
and the Depot only: never ground truth (a layering test checks it).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Routes (the `route` column of the routes table).
AUTO, REVIEW, AUDIT, DEFERRED, CONFLICT, HUMAN = "auto", "review", "audit", "deferred", "conflict", "human"
HUMANS_DISAGREE = "humans disagree"  # a conflict task's reason when two answers disagree


def second_look(why: str) -> str:
    """A conflict task's reason when the frame itself rules the human's label out (`contradiction`:
    "barcode" or "load cell")."""
    return f"human vs {why}"


@dataclass(frozen=True)
class TimeModel:
    """Seconds a person spends per task, from published measurements.

    verify_s: confirming or rejecting a proposed label, 1.6 s (Papadopoulos, Uijlings, Keller,
      Ferrari, "We don't need no bounding-boxes", CVPR 2016: 1.6 s per yes/no verification).
    box_s / extreme_click_s: drawing a box 34.5 s vs extreme clicking 7.0 s (Papadopoulos et al.,
      "Extreme clicking for efficient object annotation", ICCV 2017).
    class_scan_s: picking a SKU from scratch, 1.0 s per class considered (Bearman, Russakovsky,
      Ferrari, Fei-Fei, "What's the Point", ECCV 2016: image-level labels at ~1 s per class); a
      linear scan of an N-SKU catalog considers N/2 classes on average, so 15 s for our 30 SKUs.
    """

    verify_s: float = 1.6  # confirm / reject a proposal
    class_scan_s: float = 1.0  # per class considered when picking from scratch
    box_s: float = 34.5  # a box drawn the classic way
    extreme_click_s: float = 7.0  # a box by extreme clicking

    def pick_s(self, n_classes: int) -> float:
        """Picking the right SKU from scratch among `n_classes` (expected half scanned)."""
        return self.class_scan_s * max(1.0, n_classes / 2)

    def expected_task_s(self, confidence: float | None, n_classes: int, n_candidates: int = 0) -> float:
        """What a task costs before anyone answers: verify the proposal, and when it is wrong
        (probability 1 - confidence; no proposal: always) scan the short list of `n_candidates`
        other labels, or pick from scratch without one."""
        other = self.class_scan_s * n_candidates if n_candidates else self.pick_s(n_classes)
        if confidence is None:
            return other
        return self.verify_s + (1.0 - min(max(confidence, 0.0), 1.0)) * other

    def answer_s(self, proposed: str | None, candidates: Sequence[str], given: str | None,
                 n_classes: int) -> float:
        """Seconds to give the answer `given`: "no product" is one verification; a right proposal
        is one verification; otherwise (after rejecting the proposal, one verification) the short
        list is scanned a class at a time down to the answer (class_scan_s each), and an answer not
        on it is picked from the whole catalog after scanning the list."""
        if given is None or given == proposed:
            return self.verify_s
        spent = self.verify_s if proposed is not None else 0.0
        rest = [c for c in candidates if c != proposed]
        if given in rest:
            return spent + self.class_scan_s * (rest.index(given) + 1)
        return spent + self.class_scan_s * len(rest) + self.pick_s(n_classes)


@dataclass(frozen=True)
class RoutingConfig:
    """The routing rule. Human work per iteration does not grow with the fleet: the audit is a
    sample size (a count for a target confidence-interval width, not a share of the population),
    the doubtful are taken by value up to a quota per predicted class (the rest wait, never auto-
    accepted), and the budget is a ceiling over both, not the typical spend."""

    budget_s: float = 900.0  # ceiling on the human seconds one iteration may plan (per day and run)
    accept_threshold: float = 0.97  # calibrated P(correct): the auto part stays within a 1 % error budget
    # Audit sample of the auto-accepted. None: sized for a 95 % interval of half-width
    # `audit_half_width` at `audit_design_error` (Cochran's n0 = z^2 p (1 - p) / h^2 with the finite
    # population correction, so a day with few auto-accepted frames audits fewer); a number: the
    # old proportional draw (that share of the auto-accepted; 0 = no audit).
    audit_rate: float | None = None
    audit_half_width: float = 0.05  # target half-width of the audited error rate's 95 % interval
    audit_design_error: float = 0.02  # the error rate the sample is sized for (the p (1 - p) term)
    # Doubtful tasks taken per predicted class (the leader's label, else its first candidate) per
    # iteration; the rest are deferred to the next iteration. 0 = no quota: the batch below is cut
    # in round-robin order over the classes anyway (most doubtful first within each), so it stays
    # fair; a quota of 6 deferred most of a cold day, whose untrained teacher names a few classes
    # for nearly every frame (bench_label_turn: 92 of 189 frames).
    class_quota: int = 0
    # Doubtful tasks one iteration takes at most, in that round-robin order: a batch (a count, like
    # an active-learning batch), not a share of what the fleet captured; 0 = no cap. 80 tasks are a
    # few minutes' work at 1.6-4 s a task (TimeModel), far under the budget, and take every cheap
    # doubtful task of the demo's 4-cart turn (63-75 measured), so a 10x fleet asks at most
    # 80 + the audit's 31 tasks of people.
    max_review_tasks: int = 80
    # A doubtful task expected to cost more than this (s; 0 = no limit) waits while cheaper doubtful
    # work remains: its proposal is probably wrong and nothing narrows the pick, so a person would
    # scan the catalog (11 s+ expected, against 1.6-4 s for a verification or a short list); the
    # day's next run, with the calibration, shelf lists and teacher the answers taught, proposes
    # better, and asks for it once nothing cheaper is left.
    max_task_s: float = 8.0
    seed: int = 0  # audit draw (stable per frame_id and seed)
    n_classes: int = 30  # catalog size, for the cost of picking from scratch
    # The barcode read and the load cell (two sensors, independent of the picture) both vouch for the
    # label: a vision labeler that disagrees does not send the frame to review (on a cold day the
    # teacher is the untrained bootstrap, wrong on most frames); the audit keeps watching them.
    trust_sensors: bool = True
    # Deferred frames of the review days this many days before a run's day come back in its queue
    # (flywheel.label.backlog), oldest day first, ahead of the day's own doubtful work and under
    # the same batch and budget; 0 = off (they wait for a re-run of their own day). 28: four weekly
    # turns.
    backlog_days: int = 28
    # Once the ensemble is calibrated on human reviews (its version in labeler_versions starts with
    # "human-"), a disagreement or barcode mismatch it is still sure about (>= accept_threshold) is
    # accepted: the humans already taught it which labeler to believe; the audit keeps watching.
    trust_calibration: bool = False
    # Tasks whose leader the production detector does not box (below its threshold) also ask for a
    # box, at most this many a run, in queue order (flywheel.label.box_requests: the detector learns
    # the stores only from drawn boxes); 0 = never. Each costs TimeModel.extreme_click_s within the
    # budget. Off by default: at 40 a turn (280 s) the detector refreshed on them boxed empty store
    # carts (frozen empties 0.978 -> 0.356) and the gate blocked both turns (bench_flywheel
    # --max-boxes 40, README "a box where the device sees nothing").
    max_boxes: int = 0
    time: TimeModel = field(default_factory=TimeModel)


@dataclass
class Task:
    task_id: str
    kind: str  # review | conflict | audit
    reason: str  # why the leader is doubtful (comma separated) or "audit"
    frame_ids: list[str]  # the near-duplicate group; the first is the leader shown to the human
    proposed_label: str | None  # the pre-label (or the latest human label for a conflict)
    confidence: float | None
    est_seconds: float
    rank: int = 0  # 0 = first in the queue
    candidates: list[str] = field(default_factory=list)  # short list to pick from, best first
    draw_box: bool = False  # the production detector misses the leader's item: draw a box (box_requests)


@dataclass
class Routing:
    tasks: list[Task]
    routes: list[dict[str, Any]]  # one per frame: frame_id, route, task_id, label, confidence, reason
    budget_s: float
    planned_s: float  # expected human seconds of the tasks
    # earlier days' deferred frames this run routed (review) or deferred again: a route row plus
    # origin_day and deferred_reason (flywheel.label.backlog)
    backlog: list[dict[str, Any]] = field(default_factory=list)

    def count(self, route: str) -> int:
        return sum(1 for r in self.routes if r["route"] == route)


def human_calibrated(row: dict[str, Any]) -> bool:
    """Whether the row's ensemble was calibrated on human reviews (flywheel.label.ensemble names
    such a calibration "human-<hash>" in labeler_versions)."""
    try:
        versions = json.loads(row.get("labeler_versions") or "{}")
    except ValueError:
        return False
    return str(versions.get("ensemble", "")).startswith("human-")


def sensors_agree(row: Mapping[str, Any]) -> bool:
    """Whether the barcode labeler and the load cell both vouch for the row's label: the barcode read
    (decoded on the frame or propagated over the insertion) names it, and the weight step names it or
    keeps it on its candidate list."""
    from flywheel.label.tables import vote_candidates

    label, votes = row.get("label"), row.get("votes") or []
    if label is None:
        return False
    read = any(v.get("labeler") == "barcode" and v.get("label") == label for v in votes)
    weighed = any(v.get("labeler") == "weight" and v.get("label") == label for v in votes) or any(
        label in c for c in vote_candidates(votes, "weight"))
    return read and weighed


def doubt_reasons(row: dict[str, Any], threshold: float, trust_calibration: bool = False,
                  trust_sensors: bool = False) -> list[str]:
    reasons = []
    if row.get("label") is None:
        reasons.append("abstain")
    sure = (row.get("confidence") or 0.0) >= threshold
    vouched = sure and ((trust_calibration and human_calibrated(row))
                        or (trust_sensors and sensors_agree(row)))
    if row.get("barcode_mismatch") and not vouched:
        reasons.append("barcode_mismatch")
    if row.get("disagreement") and not vouched:
        reasons.append("disagreement")
    if row.get("label") is not None and (row.get("confidence") or 0.0) < threshold:
        reasons.append("low_confidence")
    return reasons


def doubt_score(row: dict[str, Any]) -> float:
    """Lower = more doubtful: confidence, pushed down by a barcode mismatch and by disagreement."""
    conf = 0.0 if row.get("label") is None else float(row.get("confidence") or 0.0)
    return conf - 0.5 * bool(row.get("barcode_mismatch")) - 0.25 * bool(row.get("disagreement"))


def _draw(frame_id: str, seed: int) -> float:
    """A stable uniform number per frame and seed in [0, 1)."""
    h = hashlib.blake2b(f"{seed}:{frame_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def in_audit(frame_id: str, rate: float, seed: int) -> bool:
    """A stable uniform draw per frame: the same frames are audited however often a day re-runs."""
    return _draw(frame_id, seed) < rate


def audit_sample_size(population: int, half_width: float = 0.05, design_error: float = 0.02,
                      z: float = 1.96) -> int:
    """Frames to audit out of `population` auto-accepted ones for a 95 % interval of the error rate
    about `half_width` wide on each side: Cochran's n0 = z^2 p (1 - p) / h^2 (Sampling Techniques,
    1977, eq. 4.2) with the finite population correction n = n0 / (1 + (n0 - 1) / N). A count: it
    does not grow with the fleet (31 at the defaults, however many frames are auto-accepted)."""
    if population <= 0 or half_width <= 0:
        return 0
    n0 = math.ceil(z * z * design_error * (1 - design_error) / (half_width * half_width))
    return min(population, math.ceil(n0 / (1 + (n0 - 1) / population)))


def audit_draw(frame_ids: Sequence[str], config: RoutingConfig, already: int = 0) -> set[str]:
    """The auto-accepted frames drawn into the audit: the proportional draw when `audit_rate` is
    set, else the `audit_sample_size` frames with the smallest stable draws (a simple random sample,
    the same frames on a re-run), less the `already` audited in earlier iterations of the day."""
    if config.audit_rate is not None:
        return {f for f in frame_ids if in_audit(f, config.audit_rate, config.seed)}
    n = audit_sample_size(len(frame_ids) + already, config.audit_half_width,
                          config.audit_design_error) - already
    return set(sorted(frame_ids, key=lambda f: (_draw(f, config.seed), f))[:max(0, n)])


def weak(row: Mapping[str, Any]) -> bool:
    """No labeler named or narrowed anything (at most the shelf's list, learned from people's
    labels: flywheel.label.shelf): picking its SKU costs most while the day's answers are few."""
    return row.get("label") is None and (not row.get("candidates") or bool(row.get("shelf_list")))


def stratum_of(row: Mapping[str, Any]) -> str:
    """The class a doubtful frame is counted against for the quota: its pre-label, else the first
    label on its short list, else "unknown"."""
    return row.get("label") or next(iter(row.get("candidates") or []), None) or "unknown"


def task_id_for(day: str, kind: str, frame_ids: Iterable[str]) -> str:
    h = hashlib.blake2b(f"{day}|{kind}|{','.join(sorted(frame_ids))}".encode(), digest_size=8)
    return f"{kind}-{day.replace('-', '')}-{h.hexdigest()}"  # the kind stays readable in notes


def task_day(task_id: str) -> str | None:
    """The review day whose run made the task (`task_id_for`), or None for another id."""
    parts = task_id.split("-")
    if len(parts) != 3 or len(parts[1]) != 8 or not parts[1].isdigit():
        return None
    d = parts[1]
    return f"{d[:4]}-{d[4:6]}-{d[6:]}"


Grouper = Callable[[list[dict[str, Any]]], list[list[str]]]


def singletons(rows: list[dict[str, Any]]) -> list[list[str]]:
    return [[r["frame_id"]] for r in rows]


def task_cost(kind: str, lead: Mapping[str, Any], config: RoutingConfig) -> float:
    """Expected human seconds of a task shown through `lead` (TimeModel.expected_task_s): verify the
    proposal, else its short list or the catalog; a conflict is a careful second look (one more
    verification on top)."""
    label = lead.get("label")
    cands = [c for c in (lead.get("candidates") or []) if c != label]
    if kind == CONFLICT:
        return config.time.verify_s + config.time.expected_task_s(None, config.n_classes, len(cands))
    conf = None if label is None else float(lead.get("confidence") or 0.0)
    return config.time.expected_task_s(conf, config.n_classes, len(cands))


def route_day(day: str, prelabels: Sequence[dict[str, Any]], config: RoutingConfig | None = None, *,
              human_labelled: Iterable[str] = (), conflicts: dict[str, str | None] | None = None,
              group: Grouper = singletons, rechecks: Mapping[str, str | None] | None = None,
              audited: int = 0, conflict_reasons: Mapping[str, str] | None = None,
              backlog: Sequence[dict[str, Any]] = (), elsewhere: Mapping[str, str] | None = None
              ) -> Routing:
    """Route one day's pre-labels. `human_labelled`: frames a human already settled; `conflicts`:
    frame -> latest human label, for frames back in the queue (they go first) because two humans
    disagree or the frame rules the label out (`conflict_reasons`: frame -> which, shown as the
    task's reason; default: humans disagree); `rechecks`:
    frame -> a human label the load cell contradicts (see `load_cell_rechecks`), asked again
    like a conflict; `audited`: frames of the day humans already answered in audit tasks (they
    count towards the audit sample); `backlog`: earlier days' deferred pre-label rows (with
    `origin_day`, `deferred_reason`: flywheel.label.backlog.pending), taken oldest day first ahead
    of the day's doubtful work, under the same batch and budget, without waiting again for cheaper
    work or for the day's answers (they waited a run already); their routes go to
    `Routing.backlog`, not `routes` (the day's own frames); `elsewhere`: frame -> the reason, for
    the day's frames a later day's run put in a task (they stay deferred here: never asked twice)."""
    config = config or RoutingConfig()
    done = set(human_labelled)
    conflicts = dict(conflicts or {})
    rechecked = {f: lab for f, lab in (rechecks or {}).items() if f not in conflicts}
    why_of = {f: r for f, r in (conflict_reasons or {}).items() if f in conflicts}
    why_of.update({f: second_look("load cell") for f in rechecked})
    conflicts.update(rechecked)
    by_id = {r["frame_id"]: r for r in prelabels}
    routes: dict[str, dict[str, Any]] = {}
    carried: dict[str, dict[str, Any]] = {}  # the backlog's routes
    doubtful: list[dict[str, Any]] = []
    audit: list[dict[str, Any]] = []

    def put(row: dict[str, Any], route: str, reason: str, task_id: str | None = None) -> None:
        r = {"frame_id": row["frame_id"], "route": route, "task_id": task_id, "label": row.get("label"),
             "confidence": row.get("confidence"), "reason": reason}
        if row.get("origin_day"):
            carried[row["frame_id"]] = {**r, "origin_day": row["origin_day"],
                                        "deferred_reason": row.get("deferred_reason")}
        else:
            routes[row["frame_id"]] = r

    for fid in sorted(by_id):
        row = by_id[fid]
        if fid in conflicts:
            continue  # tasks below
        if fid in done:
            put(row, HUMAN, "human label")
            continue
        if fid in (elsewhere or {}):
            put(row, DEFERRED, elsewhere[fid])
            continue
        reasons = doubt_reasons(row, config.accept_threshold, config.trust_calibration, config.trust_sensors)
        if reasons:
            doubtful.append({**row, "_reasons": reasons})
        else:
            audit.append(row)
    drawn = audit_draw([r["frame_id"] for r in audit], config, audited)
    for row in [r for r in audit if r["frame_id"] not in drawn]:
        put(row, AUTO, f"confidence >= {config.accept_threshold}")
    audit = [r for r in audit if r["frame_id"] in drawn]
    # Conflicts first (one task per frame: humans already looked at it), then doubtful groups,
    # most doubtful leader first, then the audit sample; whatever does not fit waits.
    queue: list[tuple[str, list[dict[str, Any]], str]] = []
    disputed = [{**by_id.get(f, {"frame_id": f, "clip_id": f}), "label": conflicts[f], "confidence": None}
                for f in sorted(conflicts)]
    for ids in sorted(group(disputed), key=min) if disputed else []:  # a disputed group is one task
        members = [d for d in disputed if d["frame_id"] in set(ids)]
        why = {why_of.get(m["frame_id"], HUMANS_DISAGREE) for m in members}
        queue.append((CONFLICT, members, ",".join(sorted(why))))
    doubtful.sort(key=lambda r: (doubt_score(r), r["frame_id"]))
    order = {r["frame_id"]: i for i, r in enumerate(doubtful)}
    rows_of = {r["frame_id"]: r for r in doubtful}
    review = []  # (rank within its class, queue position, members): round-robin over the classes
    per_class: dict[str, int] = {}
    groups = [sorted((rows_of[f] for f in ids), key=lambda r: order[r["frame_id"]])
              for ids in sorted(group(doubtful), key=lambda g: min(order[f] for f in g))]
    wait_weak = any(not weak(g[0]) for g in groups)
    # frames without evidence have their own rule above; of the rest, a pick from the catalog waits
    costs = [task_cost(REVIEW, g[0], config) for g in groups]
    costly = [bool(config.max_task_s) and not weak(g[0]) and c > config.max_task_s
              for g, c in zip(groups, costs, strict=True)]
    wait_costly = any(not c and not (wait_weak and weak(g[0])) for g, c in zip(groups, costly, strict=True))
    for pos, members in enumerate(groups):
        if wait_weak and weak(members[0]):
            for m in members:  # the day's other answers teach its shelf list first (cheaper later)
                put(m, DEFERRED, "no evidence yet: waits for the day's other answers")
            continue
        if wait_costly and costly[pos]:
            for m in members:  # a pick from the catalog waits while cheaper work remains
                put(m, DEFERRED, f"expected {costs[pos]:.1f} s > {config.max_task_s:g} s: waits while "
                                 "cheaper doubtful work remains")
            continue
        k = stratum_of(members[0])
        rank = per_class[k] = per_class.get(k, -1) + 1
        if config.class_quota and rank >= config.class_quota:
            for m in members:  # the class had its share this iteration: waits, never auto-accepted
                put(m, DEFERRED, f"over the class quota ({config.class_quota})")
            continue
        review.append((rank, pos, members))
    # the backlog: oldest day first, most doubtful first within a day, grouped like the day's own
    late = sorted((r for r in backlog if r["frame_id"] not in by_id), key=lambda r: (
        r["origin_day"], doubt_score(r), r["frame_id"]))
    late = [{**r, "_reasons": [*doubt_reasons(r, config.accept_threshold, config.trust_calibration,
                                              config.trust_sensors), f"deferred {r['origin_day']}"]}
            for r in late]
    late_at = {r["frame_id"]: i for i, r in enumerate(late)}
    late_rows = {r["frame_id"]: r for r in late}
    late_groups = [sorted((late_rows[f] for f in ids), key=lambda r: late_at[r["frame_id"]])
                   for ids in sorted(group(late), key=lambda g: min(late_at[f] for f in g))] if late else []
    taken = [(-1, -1, g) for g in late_groups] + sorted(review, key=lambda x: x[:2])
    for n, (_, _, members) in enumerate(taken):
        if config.max_review_tasks and n >= config.max_review_tasks:
            for m in members:  # a batch is a count: the rest waits for the next iteration
                put(m, DEFERRED, f"over the batch ({config.max_review_tasks} tasks)")
            continue
        queue.append((REVIEW, members, ",".join(members[0]["_reasons"])))
    for row in sorted(audit, key=lambda r: r["frame_id"]):
        queue.append((AUDIT, [row], "audit"))
    tasks: list[Task] = []
    spent = 0.0
    for kind, members, reason in queue:
        lead = members[0]
        label = lead.get("label")
        conf = None if label is None or kind == CONFLICT else float(lead.get("confidence") or 0.0)
        cost = task_cost(kind, lead, config)
        ids = [m["frame_id"] for m in members]
        if spent + cost > config.budget_s:
            for m in members:
                put(m, DEFERRED if kind != AUDIT else AUTO,
                    "over budget" if kind != AUDIT else "audit draw over budget")
            continue
        spent += cost
        task = Task(task_id=task_id_for(day, kind, ids), kind=kind, reason=reason, frame_ids=ids,
                    proposed_label=label, confidence=conf, est_seconds=round(cost, 3), rank=len(tasks),
                    candidates=list(lead.get("candidates") or []))
        tasks.append(task)
        for m in members:
            put(m, kind, reason, task.task_id)
    return Routing(tasks=tasks, routes=[routes[f] for f in sorted(routes)], budget_s=config.budget_s,
                   planned_s=round(spent, 3), backlog=[carried[f] for f in sorted(carried)])


def contradiction(row: Mapping[str, Any], label: str | None) -> str | None:
    """What on the frame itself rules out a human's `label`, or None: a barcode decoded on this very
    frame naming another product (or any product, against "no product"), or the load cell's
    candidate list leaving the label out. A person slips now and then (the annotator's error rate);
    such a slip is not merged before one more look settles it."""
    from flywheel.label.prelabelers.barcode import DIRECT_CONF
    from flywheel.label.tables import vote_candidates

    votes = row.get("votes") or []
    decoded = {v.get("label") for v in votes if v.get("labeler") == "barcode" and v.get("label")
               and (v.get("confidence") or 0.0) >= DIRECT_CONF}
    if decoded and label not in decoded:
        return "barcode"
    narrowing = vote_candidates(votes)
    if label is not None and narrowing and all(label not in c for c in narrowing):
        return "load cell"
    return None


def load_cell_rechecks(prelabels: Sequence[dict[str, Any]], human: Mapping[str, tuple[str | None, str | None]]
                       ) -> dict[str, str | None]:
    """Frames whose human label the load cell rules out: {frame: human label}. `human`: frame ->
    (human label, the task it was answered in). A person picking from a list slips now and then
    (the annotator's error rate); a slip is most often a product of another weight, so a narrowing
    labeler's candidate list (the `candidates` of its vote) that leaves the human's label out sends
    the frame back for one more look. An answer given in a conflict task settled it: not asked again."""
    out: dict[str, str | None] = {}
    for row in prelabels:
        fid = row["frame_id"]
        if fid not in human:
            continue
        label, task = human[fid]
        if label is None or (task or "").startswith(f"{CONFLICT}-"):
            continue
        if contradiction(row, label) == "load cell":
            out[fid] = label
    return out


def wilson_interval(errors: int, n: int, z: float = 1.96) -> tuple[float, float, float]:
    """(rate, low, high): the Wilson score interval (95 % by default) of a binomial proportion;
    well-behaved at 0 errors and small n, where the normal approximation collapses to 0 +- 0."""
    if n <= 0:
        return 0.0, 0.0, 1.0
    p = errors / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return p, max(0.0, centre - half), min(1.0, centre + half)


def lancedb_groups(table: Any, max_distance: float | None = None, limit: int = 64,
                   spans: Mapping[str, Sequence[tuple[int, int]] | None] | None = None,
                   config: Any = None) -> Grouper:
    """A grouper over the Depot's LanceDB index: near-duplicates (cosine distance <= max_distance)
    of the same clip, found by vector search prefiltered to that clip's doubtful frames, that also
    show the same item (`flywheel.label.grouping.same_item`: one insertion span, contiguous time,
    agreeing barcode and weight evidence) with every member taken so far. `spans`: clip id -> its
    ClipSidecarV2 insertion spans (None for V1). Leaders are taken in queue order, so a group is
    labelled through its most doubtful frame."""
    import dataclasses

    from flywheel.depot.index import _sql_str
    from flywheel.label.grouping import GroupingConfig, cue_of, same_item

    cfg = config or GroupingConfig()
    if max_distance is not None:
        cfg = dataclasses.replace(cfg, max_distance=max_distance)
    limit = min(limit, cfg.max_members)

    def group(rows: list[dict[str, Any]]) -> list[list[str]]:
        if not rows:
            return []
        ids = [r["frame_id"] for r in rows]
        id_list = ", ".join(_sql_str(f) for f in ids)
        got = (table.search().where(f"frame_id IN ({id_list})", prefilter=True)
               .select(["frame_id", "vector"]).limit(len(ids)).to_list())
        vectors = {g["frame_id"]: g["vector"] for g in got}
        clip_of = {r["frame_id"]: r.get("clip_id") for r in rows}
        cue = {r["frame_id"]: cue_of(r, spans or {}, cfg) for r in rows}
        taken: set[str] = set()
        groups: list[list[str]] = []
        for fid in ids:  # rows arrive in queue order
            if fid in taken:
                continue
            taken.add(fid)
            members = [fid]
            if fid in vectors:
                peers = [f for f in ids if clip_of[f] == clip_of[fid] and f not in taken
                         and same_item(cue[fid], cue[f], cfg)]
                if peers:
                    where = f"frame_id IN ({', '.join(_sql_str(f) for f in peers)})"
                    hits = (table.search(vectors[fid]).distance_type("cosine")
                            .where(where, prefilter=True).select(["frame_id", "_distance"])
                            .limit(min(limit, len(peers))).to_list())
                    for h in hits:  # nearest first; each must be one item with all taken so far
                        f = h["frame_id"]
                        if (h["_distance"] <= cfg.max_distance and f not in taken
                                and len(members) < cfg.max_members
                                and all(same_item(cue[m], cue[f], cfg) for m in members)):
                            taken.add(f)
                            members.append(f)
            groups.append(members)
        return groups

    return group
