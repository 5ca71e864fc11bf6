"""One record per turn of the loop: what the turn collected, what labelling it cost, what the
production model scores after it. Written to loop/turns/turn=NNN.json (atomic puts), read by the
demo's table, the plot and the `flywheel_turns` asset's metadata."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from edge_agent.lake import Lake

PREFIX = "loop/turns"
STORE_SETS = ("store_A", "store_B", "store_C")


@dataclass
class TurnRecord:
    turn: int
    day: str | None = None  # capture day of the turn's collection (None: turn 0, the bootstrap)
    production_top1: dict[str, float] = field(default_factory=dict)  # store set -> top-1 after the turn
    production_pooled: float | None = None  # the gate's target metric of the production model
    manual_top1: float | None = None
    clips: int = 0
    frames: int = 0
    empties_filtered: int = 0
    auto_labelled: int = 0
    human_items: int = 0  # review tasks a person answered
    human_frames: int = 0  # frames those answers labelled
    human_seconds: float = 0.0
    merged_accuracy: float | None = None  # merged labels vs simulator truth (evaluation only)
    candidate_id: str | None = None
    model_id: str | None = None  # production after the turn
    rollout_stage: str = ""
    shipped: bool = False
    note: str = ""  # why nothing trained or shipped
    turn_time_s: float | None = None  # cloud side: last clip landed -> 100 % rollout
    seconds: dict[str, float] = field(default_factory=dict)  # wall seconds per step

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> TurnRecord:
        return cls(**json.loads(data))


def turn_key(turn: int) -> str:
    return f"{PREFIX}/turn={turn:03d}.json"


def write_turn(lake: Lake, record: TurnRecord) -> str:
    key = turn_key(record.turn)
    lake.put(key, record.to_json())
    return key


def read_turns(lake: Lake) -> list[TurnRecord]:
    out = [TurnRecord.from_json(lake.get(info.key)) for info in lake.list(PREFIX)
           if info.key.endswith(".json")]
    return sorted(out, key=lambda r: r.turn)


def production_figures(lake: Lake) -> tuple[str | None, dict[str, float], float | None, float | None]:
    """(production model id, top-1 per store set, pooled production top-1, manual top-1) from the
    production model's own stored evaluation (frozen sets, same code for every model)."""
    from flywheel.learner import registry

    model_id = registry.production_model_id(lake)
    if model_id is None:
        return None, {}, None, None
    ev = registry.read_evaluation(lake, model_id).candidate
    sets = ev.sets if isinstance(ev.sets, dict) else {}
    per_store = {n: round(float(s["top1"]), 4) for n, s in sets.items()
                 if n.startswith("store_") and s.get("top1") is not None}
    m = ev.metrics
    pooled, manual = m.get("production_top1"), m.get("manual_top1")
    return (model_id, per_store, None if pooled is None else round(float(pooled), 4),
            None if manual is None else round(float(manual), 4))


def merged_accuracy(lake: Lake, day: str, truth_of: Any) -> float | None:
    """Share of the day's merged labels equal to the simulator's truth (frames with known truth).
    Evaluation code: only the simulator, the annotator and this may read ground truth."""
    from flywheel.label.annotator import UNKNOWN
    from flywheel.label.merge import read_merged

    t = read_merged(lake, day)
    if t is None or t.num_rows == 0:
        return None
    right = n = 0
    for fid, label in zip(t.column("frame_id").to_pylist(), t.column("label").to_pylist(), strict=True):
        truth = truth_of(fid)
        if truth is UNKNOWN:
            continue
        n += 1
        right += (label or None) == truth or (label in ("empty", "none") and truth is None)
    return round(right / n, 4) if n else None


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "-"
    if pct:
        return f"{100 * v:.1f}"
    if isinstance(v, float):
        return f"{v:.0f}"
    return str(v)


COLUMNS = ("turn", "day", *(f"{s} top1" for s in STORE_SETS), "manual top1", "clips", "frames",
           "empties", "auto", "human items", "human s", "merged acc", "model", "rollout")


def table_rows(records: list[TurnRecord]) -> list[list[str]]:
    rows = []
    for r in records:
        rows.append([str(r.turn), r.day or "bootstrap",
                     *(_fmt(r.production_top1.get(s), pct=True) for s in STORE_SETS),
                     _fmt(r.manual_top1, pct=True), _fmt(r.clips), _fmt(r.frames),
                     _fmt(r.empties_filtered), _fmt(r.auto_labelled), _fmt(r.human_items),
                     _fmt(r.human_seconds), _fmt(r.merged_accuracy, pct=True),
                     (r.model_id or "none")[-16:], r.rollout_stage or "-"])
    return rows


def table_text(records: list[TurnRecord]) -> str:
    rows = [list(COLUMNS), *table_rows(records)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    notes = [f"turn {r.turn}: {r.note}" for r in records if r.note]
    return "\n".join([*lines, *notes])


def table_markdown(records: list[TurnRecord]) -> str:
    head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS)
    body = "\n".join("| " + " | ".join(row) + " |" for row in table_rows(records))
    return head + "\n" + body


def flywheel_png(records: list[TurnRecord]) -> bytes:
    """Production top-1 per store set and human seconds per turn."""
    from flywheel.learner.plots import _fig_png, _plt

    plt = _plt()
    fig, (acc, cost) = plt.subplots(1, 2, figsize=(9, 3.4))
    turns = [r.turn for r in records]
    for s in STORE_SETS:
        acc.plot(turns, [100 * r.production_top1[s] if s in r.production_top1 else float("nan")
                         for r in records], marker="o", label=s)
    acc.plot(turns, [100 * r.manual_top1 if r.manual_top1 is not None else float("nan")
                     for r in records], marker="s", linestyle="--", label="manual")
    acc.set(xlabel="turn", ylabel="production model top-1 (%)", title="accuracy per turn", ylim=(0, 100))
    acc.set_xticks(turns)
    acc.legend(fontsize=7)
    cost.bar(turns, [r.human_seconds for r in records], color="tab:orange")
    cost.set(xlabel="turn", ylabel="human seconds", title="human review per turn")
    cost.set_xticks(turns)
    return _fig_png(fig)
