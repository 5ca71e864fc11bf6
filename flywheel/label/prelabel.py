"""Pre-label one capture day: every kept frame gets every labeler's vote and the calibrated ensemble
decision, written to `label/prelabels/date=D/prelabels.parquet`.

Frames come from the Depot's frames table (JPEG in the row), clip context from the sidecars in the
landing zone; labelers never see ground truth. A missing or unreadable sidecar, an unreadable JPEG
or a labeler failure is an abstention with a counted reason: every kept frame gets a row.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edge_agent.lake import Lake
from flywheel.label import tables
from flywheel.label.clips import read_sidecars
from flywheel.label.ensemble import Calibration, candidates, decide
from flywheel.label.prelabelers.base import FrameInput, Prelabeler, Vote, abstain
from flywheel.label.routing import AUDIT, RoutingConfig

AUDIT_RATE = RoutingConfig().audit_rate  # the review queue's audit draw
FRAME_KEYS = ["frame_id", "clip_id", "date", "store_id", "device_id", "frame_index", "t_s"]
BATCH = 64  # frames handed to each labeler per call


@dataclass
class PrelabelReport:
    day: str
    frames: int = 0  # kept frames pre-labelled
    labelled: int = 0  # the ensemble named a label
    abstained: int = 0
    disagreements: int = 0
    barcode_mismatches: int = 0
    votes: Counter = field(default_factory=Counter)  # labeler -> frames it named a label for
    abstains: Counter = field(default_factory=Counter)  # "labeler:reason" -> count
    sidecar_errors: int = 0  # clips whose sidecar could not be read (their labelers abstain)
    seconds: dict[str, float] = field(default_factory=dict)  # labeler -> wall seconds
    calibration: str = ""

    def metadata(self) -> dict[str, Any]:
        return {"frames": self.frames, "labelled": self.labelled, "abstained": self.abstained,
                "disagreements": self.disagreements, "barcode_mismatches": self.barcode_mismatches,
                "votes_by_labeler": dict(self.votes), "abstain_reasons": dict(self.abstains),
                "sidecar_errors": self.sidecar_errors, "calibration": self.calibration,
                "labeler_seconds": {k: round(v, 3) for k, v in self.seconds.items()}}


def load_inputs(lake: Lake, day: str, frame_ids: set[str] | dict[str, float] | None = None
                ) -> tuple[list[FrameInput], list[dict[str, Any]], int]:
    """(inputs, frame key rows, unreadable sidecars) for the day's frames (only `frame_ids` if given;
    a dict gives each frame's empty_score from the filter)."""
    from flywheel.depot.ingest import read_frames

    table = read_frames(lake, day, columns=[*FRAME_KEYS, "clip_key", "image_jpeg"])
    if table is None:
        return [], [], 0
    rows = [r for r in table.to_pylist() if frame_ids is None or r["frame_id"] in frame_ids]
    sidecars, bad = read_sidecars(lake, {r["clip_id"]: r["clip_key"] for r in rows})
    scores = frame_ids if isinstance(frame_ids, dict) else {}
    inputs = [FrameInput(r["frame_id"], r["clip_id"], r["device_id"], int(r["frame_index"]),
                         float(r["t_s"]), r["image_jpeg"], sidecars.get(r["clip_id"]),
                         {"empty_score": scores.get(r["frame_id"], 0.0)}) for r in rows]
    keys = [{k: r[k] for k in FRAME_KEYS} for r in rows]
    return inputs, keys, bad


def vote_all(labelers: Sequence[Prelabeler], inputs: Sequence[FrameInput],
             report: PrelabelReport | None = None) -> list[dict[str, Vote]]:
    """Every labeler's vote on every frame ({labeler name: vote} per frame), in batches."""
    out: list[dict[str, Vote]] = [{} for _ in inputs]
    for lab in labelers:
        t0 = time.perf_counter()
        todo = []
        for i, fv in enumerate(out):
            by = next((n for n, c in lab.skip_when.items() if n in fv and fv[n].label is not None
                       and fv[n].confidence >= c), None)
            if by is None:
                todo.append(i)
            else:
                fv[lab.name] = abstain("skipped", f"{by} decided")
        for k in range(0, len(todo), BATCH):
            idx = todo[k:k + BATCH]
            votes = lab.label([inputs[i] for i in idx])
            if len(votes) != len(idx):
                raise RuntimeError(f"labeler {lab.name} returned {len(votes)} votes for {len(idx)} frames")
            for i, v in zip(idx, votes, strict=True):
                out[i][lab.name] = v
        if report is not None:
            report.seconds[lab.name] = report.seconds.get(lab.name, 0.0) + time.perf_counter() - t0
    return out


def prelabel_rows(keys: Sequence[dict[str, Any]], votes: Sequence[dict[str, Vote]],
                  labelers: Sequence[Prelabeler], cal: Calibration, report: PrelabelReport,
                  empty_scores: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """The prelabels rows (tables.PRELABELS_SCHEMA) and the report's counts."""
    versions = {lab.name: lab.version for lab in labelers} | {"ensemble": cal.version}
    versions_json = tables.labeler_versions_json(versions)
    vision = {lab.name: lab.vision for lab in labelers}
    rows = []
    empty_scores = empty_scores or [0.0] * len(keys)
    for key, fv, es in zip(keys, votes, empty_scores, strict=True):
        d = decide(fv, cal, vision, es)
        for name, v in fv.items():
            if v.label is not None:
                report.votes[name] += 1
            else:
                report.abstains[f"{name}:{v.reason or 'abstain'}"] += 1
        report.frames += 1
        report.labelled += d.label is not None
        report.abstained += d.label is None
        report.disagreements += d.disagreement
        report.barcode_mismatches += d.barcode_mismatch
        rows.append({**key, "label": d.label, "confidence": d.confidence,
                     "votes": [{"labeler": n, "version": versions[n], "label": v.label,
                                "confidence": float(v.confidence), "evidence": v.evidence[:500],
                                "candidates": list(v.candidates)}
                               for n, v in fv.items()],
                     "labeler_versions": versions_json, "disagreement": d.disagreement,
                     "barcode_mismatch": d.barcode_mismatch, "candidates": candidates(fv, d)})
    report.calibration = cal.version
    return rows


def kept_scores(lake: Lake, day: str) -> dict[str, float]:
    """{frame_id: empty_score} of the day's frames the filter kept."""
    cand = tables.read_candidates(lake, day, columns=["frame_id", "kept", "empty_score"]).to_pylist()
    return {c["frame_id"]: float(c["empty_score"]) for c in cand if c["kept"]}


def prelabel_day(lake: Lake, day: str, labelers: Sequence[Prelabeler], cal: Calibration | None = None
                 ) -> PrelabelReport:
    """Pre-label the day's kept candidates and replace its prelabels file."""
    cal = cal or Calibration()
    kept = kept_scores(lake, day)
    report = PrelabelReport(day=day)
    inputs, keys, report.sidecar_errors = load_inputs(lake, day, kept)
    votes = vote_all(labelers, inputs, report)
    rows = prelabel_rows(keys, votes, labelers, cal, report, [f.extra["empty_score"] for f in inputs])
    tables.write_prelabels(lake, day, rows)
    return report


def build_labelers(lake: Lake, products: Sequence[Any], work_dir: str, *, vlm_checkpoint: str | None = None,
                   teacher_model_id: str | None = None, teacher_dir: str | None = None, ocr: bool = True
                   ) -> tuple[list[Prelabeler], dict[str, str]]:
    """The ensemble's labelers and a status line for each (what the asset's metadata shows)."""
    from flywheel.label.prelabelers.barcode import BarcodeLabeler
    from flywheel.label.prelabelers.teacher import TeacherLabeler
    from flywheel.label.prelabelers.weight import WeightLabeler

    labelers: list[Prelabeler] = [BarcodeLabeler({p.ean for p in products}), WeightLabeler(products)]
    status = {"barcode": "on", "weight": f"on ({labelers[1].skipped} products without a weight)"}
    teacher = (TeacherLabeler(teacher_dir) if teacher_dir
               else TeacherLabeler.from_registry(lake, work_dir, teacher_model_id))
    labelers.append(teacher)
    status["teacher"] = teacher.version if teacher.model is not None else f"abstains: {teacher.load_error}"
    if ocr:
        from flywheel.label.prelabelers.reader import ReaderLabeler

        reader = ReaderLabeler(products)
        labelers.append(reader)
        status["reader"] = f"{reader.version} ({reader.skipped} products without a name)"
    else:
        status["reader"] = "off"
    if vlm_checkpoint:
        from flywheel.label.prelabelers.vlm import VlmLabeler

        vlm = VlmLabeler(vlm_checkpoint, products)
        labelers.append(vlm)
        status["vlm"] = vlm.version if vlm.model is not None else f"abstains: {vlm.load_error}"
    else:
        status["vlm"] = "not configured"
    return labelers, status


def votes_from_rows(votes: Sequence[dict[str, Any]]) -> dict[str, Vote]:
    """The {labeler: Vote} of a prelabels row's `votes` column."""
    return {v["labeler"]: Vote(v["label"], float(v["confidence"] or 0.0), v["evidence"] or "",
                               candidates=tuple(v.get("candidates") or ())) for v in votes}


def inclusion_weight(task_id: str | None, audit_rate: float) -> float:
    """1 / the probability that a human saw this frame: every doubtful frame is reviewed, an
    auto-accepted one only when the audit drew it (its task id starts with "audit-")."""
    return 1.0 / audit_rate if (task_id or "").startswith(f"{AUDIT}-") and audit_rate > 0 else 1.0


def day_audit_rate(merged: Sequence[dict[str, Any]]) -> float:
    """The share of the day's auto-accepted frames a human audited: audit answers over audit
    answers plus auto labels (the audit is a count, so the share differs from day to day)."""
    audited = sum(1 for r in merged
                  if r["source"] == "human" and (r["task_id"] or "").startswith(f"{AUDIT}-"))
    auto = sum(1 for r in merged if r["source"] == "auto")
    return audited / (audited + auto) if audited else 0.0


def reviewed_items(lake: Lake, limit_days: int = 60, audit_rate: float | None = AUDIT_RATE
                   ) -> list[tuple[dict[str, Vote], str | None, float, float]]:
    """(votes, human label, the filter's empty_score, inclusion weight) of every pre-labelled frame
    a human has reviewed (the review stage's merged labels with source "human"), over the latest
    `limit_days` days that have merged labels. The weight undoes the routing's selection (see
    `ensemble.fit`); `audit_rate` None: each day's own audited share (`day_audit_rate`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    days = sorted({i.key.split("/")[2].removeprefix("date=") for i in lake.list(f"{tables.MERGED}/")
                   if i.key.endswith(".parquet") and "/date=" in i.key})[-limit_days:]
    items = []
    for day in days:
        try:
            merged = pq.read_table(pa.BufferReader(lake.get(f"{tables.MERGED}/date={day}/merged.parquet")),
                                   columns=["frame_id", "label", "source", "task_id"]).to_pylist()
        except Exception:  # noqa: BLE001 - the review stage's file; a bad one only costs its items
            continue
        human = {r["frame_id"]: r["label"] for r in merged if r["source"] == "human"}
        rate = day_audit_rate(merged) if audit_rate is None else audit_rate
        weight = {r["frame_id"]: inclusion_weight(r["task_id"], rate) for r in merged}
        if not human:
            continue
        pre = tables.read_prelabels(lake, day, columns=["frame_id", "votes"]).to_pylist()
        scores = kept_scores(lake, day)
        items.extend((votes_from_rows(r["votes"]), human[r["frame_id"]], scores.get(r["frame_id"], 0.0),
                      weight[r["frame_id"]]) for r in pre if r["frame_id"] in human)
    return items
