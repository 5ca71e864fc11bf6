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
    human_seconds: float = 0.0  # boxes included
    human_boxes: int = 0  # boxes drawn where the production detector missed the item
    merged_accuracy: float | None = None  # merged labels vs simulator truth (evaluation only)
    candidate_id: str | None = None
    model_id: str | None = None  # production after the turn
    rollout_stage: str = ""
    shipped: bool = False
    note: str = ""  # why nothing trained or shipped
    # cloud side, from the last clip landed to the turn's rollout decision: 100 % rollout when it
    # shipped in full, else the decision that stopped it (turn_time_until says which)
    turn_time_s: float | None = None
    turn_time_until: str = ""  # full_rollout | gate_blocked | rollout_held | rollout_halted
    seconds: dict[str, float] = field(default_factory=dict)  # wall seconds per demo step
    stage_seconds: dict[str, float] = field(default_factory=dict)  # wall seconds per stage (STAGES)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> TurnRecord:
        return cls(**json.loads(data))


# Where a turn's wall time goes. Device and human side: collect (the fleet's capture day), review
# (the simulated annotator), health (the fleet's shifts that report rollout health). Cloud side:
# everything else; a turn's cloud time is their sum, up to its rollout decision.
STAGES = ("collect", "ingest", "label", "review", "merge", "dataset", "train", "gate", "release",
          "health", "rollout")
CLOUD_STAGES = ("ingest", "label", "merge", "dataset", "train", "gate", "release", "rollout")
# train_and_evaluate's steps by stage; the run's remaining wall time (run start, Ray) is training's
DATASET_STEPS = ("learner_sources", "dataset_version")
GATE_STEPS = ("candidate_evaluation", "candidate_evaluation_release_gate")


def stage_seconds(steps: dict[str, float], train_steps: dict[str, float] | None = None) -> dict[str, float]:
    """Wall seconds per stage from the demo's step seconds (collect, ingest, label, review, merge,
    train, release, health_shift_N, rollout_N) and the train_and_evaluate run's step seconds."""
    out = {k: steps[k] for k in ("collect", "ingest", "label", "review", "merge") if k in steps}
    if "train" in steps:
        train_steps = train_steps or {}
        dataset = sum(v for k, v in train_steps.items() if k in DATASET_STEPS)
        gate = sum(v for k, v in train_steps.items() if k in GATE_STEPS)
        out.update(dataset=dataset, train=max(steps["train"] - dataset - gate, 0.0), gate=gate)
    if "release" in steps:
        out["release"] = steps["release"]
    for stage, prefix in (("health", "health_shift_"), ("rollout", "rollout_")):
        shifts = [v for k, v in steps.items() if k.startswith(prefix)]
        if shifts:
            out[stage] = sum(shifts)
    return {k: round(out[k], 2) for k in STAGES if k in out}


def turn_time(stages: dict[str, float], rollout_stage: str, shipped: bool) -> tuple[float | None, str]:
    """(cloud seconds from the last clip landed to the turn's rollout decision, which decision):
    full_rollout (100 %), gate_blocked (nothing shipped), rollout_halted or rollout_held."""
    if not shipped and "gate" not in stages:
        return None, ""  # nothing was trained (no new clips)
    until = ("gate_blocked" if not shipped else "full_rollout" if rollout_stage.startswith("full")
             else "rollout_halted" if rollout_stage.startswith(("halted", "rolled_back"))
             else "rollout_held")
    return round(sum(stages.get(k, 0.0) for k in CLOUD_STAGES), 1), until


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
           "empties", "auto", "human items", "boxes", "human s", "merged acc", "model", "rollout")


def table_rows(records: list[TurnRecord]) -> list[list[str]]:
    rows = []
    for r in records:
        rows.append([str(r.turn), r.day or "bootstrap",
                     *(_fmt(r.production_top1.get(s), pct=True) for s in STORE_SETS),
                     _fmt(r.manual_top1, pct=True), _fmt(r.clips), _fmt(r.frames),
                     _fmt(r.empties_filtered), _fmt(r.auto_labelled), _fmt(r.human_items),
                     _fmt(r.human_boxes), _fmt(r.human_seconds), _fmt(r.merged_accuracy, pct=True),
                     (r.model_id or "none")[-16:], r.rollout_stage or "-"])
    return rows


def _text(columns: tuple[str, ...], body: list[list[str]]) -> str:
    rows = [list(columns), *body]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows)


def table_text(records: list[TurnRecord]) -> str:
    notes = [f"turn {r.turn}: {r.note}" for r in records if r.note]
    return "\n".join([_text(COLUMNS, table_rows(records)), *notes])


def table_markdown(records: list[TurnRecord]) -> str:
    return _markdown(COLUMNS, table_rows(records))


def _markdown(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)
    return head + "\n" + "\n".join("| " + " | ".join(row) + " |" for row in rows)


SECONDS_COLUMNS = ("turn", *STAGES, "cloud turn s", "until")


def seconds_rows(records: list[TurnRecord]) -> list[list[str]]:
    return [[str(r.turn), *(_fmt(r.stage_seconds.get(k)) for k in STAGES), _fmt(r.turn_time_s),
             r.turn_time_until or "-"] for r in records]


def seconds_text(records: list[TurnRecord]) -> str:
    """Wall seconds per stage and turn: where a turn's time goes."""
    return _text(SECONDS_COLUMNS, seconds_rows(records))


def seconds_markdown(records: list[TurnRecord]) -> str:
    return _markdown(SECONDS_COLUMNS, seconds_rows(records))


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
