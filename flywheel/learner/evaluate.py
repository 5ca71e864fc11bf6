"""Evaluation on the frozen standard test sets with the ONNX model the device would run.

Metrics per set: top-1 accuracy, expected calibration error (ECE), accuracy per SKU. Across the
production sets (pooled): `production_top1`, and slices by store and by condition (frames where a
degradation is strong). Frames whose label the model has no class for (store-specific SKUs a
bootstrap model never saw) count as errors: that open-set gap is what the flywheel must close.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import polars as pl

from flywheel.learner.config import EMPTY_CLASS

CONDITION_SLICE_THRESHOLD = 0.5  # a frame is in slice "cond:<name>" when that strength >= this
ECE_BINS = 15


@dataclass(frozen=True)
class Predictions:
    labels: list[str]  # ground truth per frame
    predicted: list[str]  # argmax class per frame
    confidence: np.ndarray  # max probability per frame
    correct: np.ndarray  # bool per frame


def true_labels(frames: pl.DataFrame) -> list[str]:
    empty = frames["is_empty"].fill_null(False).to_list()
    return [EMPTY_CLASS if e else (s if s is not None else "__unlabelled__")
            for e, s in zip(empty, frames["sku"].to_list(), strict=True)]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def frame_probs(session, frames: pl.DataFrame, n_classes: int, imgsz: int, chunk: int = 256,
                wb: str = "none") -> np.ndarray:
    """Softmax probabilities [n_frames, n_classes] of the ONNX model on each frame's PNG. A
    two-stage model (flywheel/learner/two_stage.SlotModel) gives them itself, from the device's
    runtime."""
    from flywheel.learner.onnx_tools import onnx_outputs
    from flywheel.learner.preprocess import png_batch

    pngs = frames["image_png"].to_list()
    if hasattr(session, "frame_probs"):
        return session.frame_probs(pngs)
    probs = []
    for i in range(0, len(pngs), chunk):  # decode in chunks: a whole set as float32 is large
        probs.append(onnx_outputs(session, png_batch(pngs[i:i + chunk], imgsz, wb)))
    return softmax(np.concatenate(probs)) if probs else np.zeros((0, n_classes), np.float32)


def predict(session, frames: pl.DataFrame, classes: list[str], imgsz: int,
            chunk: int = 256, wb: str = "none") -> Predictions:
    p = frame_probs(session, frames, len(classes), imgsz, chunk, wb)
    labels = true_labels(frames)
    idx = p.argmax(1) if len(p) else np.zeros(0, int)
    predicted = [classes[int(i)] for i in idx]
    correct = np.array([a == b for a, b in zip(labels, predicted, strict=True)], bool)
    return Predictions(labels, predicted, p.max(1) if len(p) else np.zeros(0), correct)


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: sum over confidence bins of |accuracy - confidence| * share."""
    if len(confidence) == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            total += m.mean() * abs(float(correct[m].mean()) - float(confidence[m].mean()))
    return float(total)


def _acc(correct: np.ndarray) -> float | None:
    return float(correct.mean()) if len(correct) else None


def set_metrics(frames: pl.DataFrame, pred: Predictions, classes: list[str]) -> dict:
    per_sku: dict[str, dict] = {}
    labels = np.array(pred.labels, dtype=object)
    for sku in sorted(set(pred.labels)):
        m = labels == sku
        per_sku[sku] = {"n": int(m.sum()), "top1": _acc(pred.correct[m])}
    unknown = [lab for lab in pred.labels if lab not in classes]
    return {"n": frames.height, "top1": _acc(pred.correct), "ece": ece(pred.confidence, pred.correct),
            "mean_confidence": float(pred.confidence.mean()) if len(pred.confidence) else None,
            "per_sku": per_sku, "frames_with_unknown_class": len(unknown),
            "top1_known_classes": _acc(pred.correct[np.isin(labels, classes)])}


def condition_slices(frames: pl.DataFrame, correct: np.ndarray) -> dict[str, dict]:
    conds = [json.loads(c) for c in frames["conditions"].to_list()]
    names = sorted({k for c in conds for k in c})
    out = {}
    for name in names:
        m = np.array([c.get(name, 0.0) >= CONDITION_SLICE_THRESHOLD for c in conds], bool)
        out[f"cond:{name}"] = {"n": int(m.sum()), "top1": _acc(correct[m])}
    empty = frames["is_empty"].fill_null(False).to_numpy()
    out["frame:empty"] = {"n": int(empty.sum()), "top1": _acc(correct[empty])}
    out["frame:item"] = {"n": int((~empty).sum()), "top1": _acc(correct[~empty])}
    return out


def evaluate_model(session, classes: list[str], imgsz: int, test_sets: dict[str, pl.DataFrame],
                   production_sets: list[str], latency: dict | None = None, wb: str = "none") -> dict:
    """Metrics of one model on every standard set; `production_sets` are pooled for the target;
    `wb`: the model's white balance (preprocess.py)."""
    sets, slices = {}, {}
    pooled_frames, pooled_correct, pooled_conf = [], [], []
    for name, frames in sorted(test_sets.items()):
        pred = predict(session, frames, classes, imgsz, wb=wb)
        sets[name] = set_metrics(frames, pred, classes)
        slices[f"set:{name}"] = {"n": sets[name]["n"], "top1": sets[name]["top1"]}
        if name in production_sets:
            pooled_frames.append(frames.select("is_empty", "conditions"))
            pooled_correct.append(pred.correct)
            pooled_conf.append(pred.confidence)
    metrics: dict[str, float | None] = {}
    if pooled_frames:
        frames = pl.concat(pooled_frames)
        correct, conf = np.concatenate(pooled_correct), np.concatenate(pooled_conf)
        metrics["production_top1"] = _acc(correct)
        metrics["production_ece"] = ece(conf, correct)
        slices.update(condition_slices(frames, correct))
    manual = [n for n in sets if n not in production_sets]
    if manual:
        n = sum(sets[m]["n"] for m in manual)
        metrics["manual_top1"] = sum(sets[m]["top1"] * sets[m]["n"] for m in manual) / max(n, 1)
        metrics["manual_ece"] = float(np.mean([sets[m]["ece"] for m in manual]))
    if "production_top1" in metrics and "manual_top1" in metrics:
        metrics["manual_minus_production_top1"] = metrics["manual_top1"] - metrics["production_top1"]
    if latency:
        metrics["latency_p95_ms"] = latency["p95_ms"]
    return {"sets": sets, "slices": slices, "metrics": metrics, "latency": latency or {}}


def comparison_report(candidate_id: str, candidate: dict, production_id: str | None,
                      production: dict | None) -> str:
    """Markdown: candidate vs production, metric by metric and slice by slice."""
    lines = [f"### Candidate `{candidate_id}` vs production `{production_id or 'none'}`", "",
             "| metric | candidate | production | delta |", "|---|---:|---:|---:|"]

    def fmt(v):
        return "-" if v is None else f"{v:.4f}"

    for k, v in sorted(candidate["metrics"].items()):
        p = production["metrics"].get(k) if production else None
        d = (v - p) if (v is not None and p is not None) else None
        lines.append(f"| {k} | {fmt(v)} | {fmt(p)} | {fmt(d)} |")
    lines += ["", "| slice | n | candidate | production | delta |", "|---|---:|---:|---:|---:|"]
    for k, s in sorted(candidate["slices"].items()):
        p = production["slices"].get(k, {}).get("top1") if production else None
        d = (s["top1"] - p) if (s["top1"] is not None and p is not None) else None
        lines.append(f"| {k} | {s['n']} | {fmt(s['top1'])} | {fmt(p)} | {fmt(d)} |")
    return "\n".join(lines)


# -- detect --------------------------------------------------------------------------------------

def evaluate_detect(weights, classes: list[str], imgsz: int, test_sets: dict[str, pl.DataFrame],
                    production_sets: list[str], latency: dict | None = None) -> dict:
    """Box mAP per standard set with ultralytics' validator on the torch checkpoint (the ONNX
    export is held to it by the golden check). Items of SKUs the model has no class for are
    dropped from the labels and counted: they cannot be scored as a class."""
    import tempfile
    from pathlib import Path

    from ultralytics import YOLO

    from flywheel.learner.config import DatasetSpec
    from flywheel.learner.datasets import label_frames
    from flywheel.learner.materialize import materialize_detect

    model = YOLO(str(weights))
    sets, slices = {}, {}
    pooled: list[tuple[int, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="flywheel-eval-det-") as tmp:
        for name, frames in sorted(test_sets.items()):
            members, _ = label_frames(frames, DatasetSpec(task="detect"))
            known = members.filter(pl.col("label").is_in([*classes, EMPTY_CLASS]))
            known = known.with_columns(pl.lit("val").alias("split"))
            yaml = materialize_detect(known, [*classes, EMPTY_CLASS], Path(tmp) / name)
            res = model.val(data=str(yaml), imgsz=imgsz, batch=16, device="cpu", workers=0,
                            plots=False, verbose=False, split="val", project=str(Path(tmp) / "runs"),
                            name=name, exist_ok=True)
            m50, m = float(res.box.map50), float(res.box.map)
            sets[name] = {"n": known.height, "map50": m50, "map50_95": m,
                          "frames_with_unknown_class": members.height - known.height}
            slices[f"set:{name}"] = {"n": known.height, "top1": None, "map50": m50}
            if name in production_sets:
                pooled.append((known.height, m50, m))
    metrics: dict[str, float | None] = {}
    n = sum(p[0] for p in pooled)
    if n:
        metrics["production_map50"] = sum(p[0] * p[1] for p in pooled) / n
        metrics["production_map50_95"] = sum(p[0] * p[2] for p in pooled) / n
    manual = [k for k in sets if k not in production_sets]
    if manual:
        metrics["manual_map50"] = float(np.mean([sets[k]["map50"] for k in manual]))
    if latency:
        metrics["latency_p95_ms"] = latency["p95_ms"]
    return {"sets": sets, "slices": slices, "metrics": metrics, "latency": latency or {}}
