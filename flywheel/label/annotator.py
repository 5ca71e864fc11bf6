"""A simulated annotator for the demo and the benchmarks: answers open review tasks from the
simulator's ground truth, with a configurable error rate, and bills its time with the cited time
model (`flywheel.label.routing.TimeModel`). It writes `CorrectionBatchV1` files into
`landing/corrections/` exactly as a real tool integration would; the corrections sensor takes it
from there. Evaluation code: it may read ground truth, the labelers and routing may not.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from edge_agent.contract.layout import LANDING_CORRECTIONS, corrections_key
from edge_agent.contract.schemas import parse_correction_batch
from edge_agent.lake import Lake
from flywheel.label.corrections import CORRECTIONS, batch_doc
from flywheel.label.merge import task_of
from flywheel.label.routing import Task, TimeModel

TOOL = "flywheel-sim-annotator"
UNKNOWN = object()  # no ground truth for a frame: the task is left open


@dataclass(frozen=True)
class AnnotatorConfig:
    error_rate: float = 0.02  # share of answers that are wrong (a random other SKU, or "no product")
    seed: int = 0
    annotator: str = "sim-annotator-1"
    # a drawn box's sides move by this share of its width / height (normal sd): extreme-clicked
    # boxes reach mean IoU 0.88 with the reference boxes (Papadopoulos et al., ICCV 2017)
    box_jitter: float = 0.03
    time: TimeModel = field(default_factory=TimeModel)


@dataclass
class AnnotationReport:
    tasks_answered: int = 0
    frames_answered: int = 0
    tasks_without_truth: int = 0
    wrong_answers: int = 0  # deliberate errors (the error rate at work)
    seconds: float = 0.0  # billed by the time model
    verify_only: int = 0  # tasks settled by one verification
    items_answered: int = 0  # distinct items shown across the answered tasks (1 per task ideally)
    mixed_tasks: int = 0  # tasks whose frames showed more than one item (each answered on its own)
    boxes_drawn: int = 0  # boxes drawn where a task asked for one (draw_box) and an item was in view
    box_seconds: float = 0.0  # their share of `seconds`
    batch_key: str | None = None


def answer(task: Task, truth: str | None, catalog: list[str], config: AnnotatorConfig,
           rng: random.Random) -> tuple[str | None, float, bool]:
    """(the answer, seconds it took, whether it is a deliberate error)."""
    given = truth
    wrong = rng.random() < config.error_rate
    if wrong:
        given = rng.choice([s for s in [*catalog, None] if s != truth])
    seconds = config.time.answer_s(task.proposed_label, task.candidates, given, max(1, len(catalog)))
    return given, seconds, wrong


def answered_task_ids(lake: Lake, day: str) -> set[str]:
    """Tasks some correction already answers: filed for the day, or still waiting in landing."""
    return _answered(lake, day)[0]


def _answered(lake: Lake, day: str) -> tuple[set[str], datetime | None]:
    """(the tasks answered so far, the time of the latest answer) for the day: its own frames' and
    the earlier days' it took a backlog from (their answers are filed to those days)."""
    from flywheel.label.backlog import origin_days

    done: set[str] = set()
    latest: datetime | None = None
    days = [day, *origin_days(lake, day)]
    for prefix in (*(f"{CORRECTIONS}/date={d}" for d in days), LANDING_CORRECTIONS):
        for info in lake.list(prefix):
            try:
                batch = parse_correction_batch(lake.get(info.key))
            except Exception:  # noqa: BLE001 - not ours to judge here: the sensor quarantines it
                continue
            done |= {t for c in batch.corrections if (t := task_of(c.note))}
            latest = max([latest or batch.corrections[0].corrected_at,
                          *(c.corrected_at for c in batch.corrections)])
    return done, latest


def drawn_box(box: Any, config: AnnotatorConfig, rng: random.Random) -> list[float] | None:
    """The box a person draws around the true `box` (x1, y1, x2, y2 pixels): each side off by
    `box_jitter` of the box's size; None when the truth has no box."""
    if box is None:
        return None
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    j = config.box_jitter
    out = [max(0.0, x1 + rng.gauss(0, j * w)), max(0.0, y1 + rng.gauss(0, j * h)),
           x2 + rng.gauss(0, j * w), y2 + rng.gauss(0, j * h)]
    return out if out[0] < out[2] and out[1] < out[3] else [x1, y1, x2, y2]


def annotate(tasks: list[Task], truth_of: Callable[[str], Any], catalog: list[str],
             config: AnnotatorConfig, now: datetime, box_of: Callable[[str], Any] | None = None
             ) -> tuple[list[dict[str, Any]], AnnotationReport]:
    """Answer `tasks` in queue order; the corrections' times advance with the billed seconds.
    A task that asks for a box (`draw_box`) gets one on its leader from `box_of` (frame id -> true
    item box) when the person names a product there, billed `TimeModel.extreme_click_s`."""
    rng = random.Random(config.seed)
    report = AnnotationReport()
    out: list[dict[str, Any]] = []
    clock = now
    for task in sorted(tasks, key=lambda t: t.rank):
        truths = {fid: truth_of(fid) for fid in task.frame_ids}
        if truths[task.frame_ids[0]] is UNKNOWN:
            report.tasks_without_truth += 1
            continue
        # A person shown a group sees every frame: one answer per distinct item shown, each billed
        # by the time model (grouping should make this one; a mixed group costs more, honestly).
        items = list(dict.fromkeys(t for t in truths.values() if t is not UNKNOWN))
        given_of: dict[Any, str | None] = {}
        for item in items:
            given, seconds, wrong = answer(task, item, catalog, config, rng)
            given_of[item] = given
            clock += timedelta(seconds=seconds)
            report.seconds += seconds
            report.wrong_answers += wrong
        report.items_answered += len(items)
        report.mixed_tasks += len(items) > 1
        lead_given = given_of[truths[task.frame_ids[0]]]
        report.verify_only += (len(items) == 1 and task.proposed_label is not None
                               and lead_given == task.proposed_label)
        report.tasks_answered += 1
        lead = task.frame_ids[0]
        box = None
        if task.draw_box and box_of is not None and lead_given is not None and truths[lead] is not None:
            box = drawn_box(box_of(lead), config, rng)
            if box is not None:
                clock += timedelta(seconds=config.time.extreme_click_s)
                report.seconds += config.time.extreme_click_s
                report.box_seconds += config.time.extreme_click_s
                report.boxes_drawn += 1
        for fid in task.frame_ids:  # labelled once per item; the tool expands it per frame
            if truths[fid] is UNKNOWN:
                continue  # nothing the simulation knows: left open
            given = given_of[truths[fid]]
            action = "reject" if given is None else ("confirm" if given == task.proposed_label else "relabel")
            out.append({"frame_id": fid, "action": action, "sku": given,
                        "previous_sku": task.proposed_label, "annotator": config.annotator,
                        "corrected_at": clock, "note": f"task {task.task_id}",
                        **({"box": box} if fid == lead and box is not None else {})})
            report.frames_answered += 1
    return out, report


def fleet_truth_lookup(lake: Lake, day: str, frame_ids: list[str], **fleet: Any) -> Callable[[str], Any]:
    """frame id -> true SKU (None = no item) for Depot frames of a simulated fleet day; UNKNOWN for
    frames the simulation did not produce (`fleet`: fleet_truths' arguments)."""
    truths = fleet_truths(lake, day, frame_ids, **fleet)
    return lambda fid: truth_sku(truths(fid))


def truth_sku(t: Any) -> Any:
    """A FrameTruth's SKU (None: no item in view); UNKNOWN stays UNKNOWN."""
    return t if t is UNKNOWN else (None if t.is_empty else t.sku)


def truth_box(t: Any) -> Any:
    """A FrameTruth's item box (None: no item in view, or UNKNOWN)."""
    return None if t is UNKNOWN or t.is_empty else t.item_box


def fleet_truths(lake: Lake, day: str, frame_ids: list[str], *, seed: int = 0, stores: int = 3,
                 fps: float = 10.0, carts: int | None = None, minutes: float | None = None,
                 world_seed: int | None = None) -> Callable[[str], Any]:
    """frame id -> the simulator's FrameTruth (SKU, item box, ...) for Depot frames of a simulated
    fleet day; UNKNOWN for frames the simulation did not produce. Carts and minutes default to what
    the frames imply."""
    from flywheel.depot.ingest import read_frames
    from flywheel.fleet.truth import fleet_truth, truth_key

    frames = read_frames(lake, day, columns=["frame_id", "device_id", "captured_at"])
    wanted = set(frame_ids)
    rows = [r for r in (frames.to_pylist() if frames is not None else []) if r["frame_id"] in wanted]
    if not rows:
        return lambda fid: UNKNOWN
    cart_ids = [int(r["device_id"].rsplit("-", 1)[-1]) for r in rows if r["device_id"].startswith("cart-")]
    carts = carts or (max(cart_ids) + 1 if cart_ids else 1)
    if minutes is None:  # long enough to cover the latest frame of any cart (they start 7 min apart)
        first = datetime.fromisoformat(f"{day}T09:00:00+00:00")
        minutes = max((r["captured_at"] - first).total_seconds() for r in rows) / 60 + 1.0
    truth = fleet_truth(carts, minutes, seed=seed, day=day, stores=stores, fps=fps, world_seed=world_seed)
    by_frame = {}
    for r in rows:
        t = truth.get(truth_key(r["device_id"], r["captured_at"]))
        by_frame[r["frame_id"]] = UNKNOWN if t is None else t
    return lambda fid: by_frame.get(fid, UNKNOWN)


def simulate_review(lake: Lake, day: str, tasks: list[Task], catalog: list[str],
                    truth_of: Callable[[str], Any], config: AnnotatorConfig | None = None,
                    now: datetime | None = None, box_of: Callable[[str], Any] | None = None
                    ) -> AnnotationReport:
    """Answer the day's open tasks and land one correction batch (none when nothing is open);
    `box_of`: frame id -> true item box, for the tasks that ask for one."""
    config = config or AnnotatorConfig()
    done, latest = _answered(lake, day)
    open_tasks = [t for t in tasks if t.task_id not in done]
    # simulated time runs faster than the wall clock: a later session starts after the last answer
    start = max(now or datetime.now(UTC), latest + timedelta(seconds=1) if latest else datetime.min.replace(
        tzinfo=UTC))
    corrections, report = annotate(open_tasks, truth_of, sorted(catalog), config, start, box_of)
    if not corrections:
        return report
    digest = hashlib.blake2b("|".join(sorted(t.task_id for t in open_tasks)).encode()
                             + config.annotator.encode(), digest_size=8).hexdigest()
    batch_id = f"sim-{day}-{digest}"
    key = corrections_key(batch_id)
    lake.put(key, batch_doc(batch_id, TOOL, corrections))
    report.batch_key = key
    return report
