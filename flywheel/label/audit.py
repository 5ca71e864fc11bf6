"""The ground-truth audit: which merged labels are probably wrong. It never changes a label; it
writes a ranked list of suspects that goes to human review (`flywheel label push`).

Two kinds of evidence, per frame of one capture day's merged labels:
- cleanlab's confident learning (`find_label_issues`) on out-of-fold predicted probabilities: a
  k-nearest-neighbour vote on the Depot's frame embeddings (the LanceDB index vectors),
  cross-validated in K stratified folds so each frame is scored by a model that never saw its label
  (the teacher's role, without the teacher having trained on these very labels);
- weak truth that no model supplies, from the pre-labels of the same frame: the barcode read of the
  insertion (propagated over it by the barcode labeler) and the weight step (the catalog SKUs whose
  weight fits it). A label the barcode contradicts, or that the weight rules out, is suspect.

    label/audit/date=D/suspects.parquet   frame_id, label, rank, score, reasons, suggested, self_confidence
    label/audit/date=D/summary.json       frames, suspects, estimated error rate, per reason counts
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_agent.contract.layout import validate_date
from edge_agent.lake import Lake, ObjectNotFound

AUDIT = "label/audit"
EMPTY = "none"  # the class of a frame a human said holds no product
WEIGHT_LIST_CAP = 5  # a weight list this long or longer rules out too little to count as weak truth


def audit_key(day: str, name: str) -> str:
    return f"{AUDIT}/date={validate_date(day)}/{name}"


@dataclass(frozen=True)
class AuditConfig:
    folds: int = 5  # cross-validation folds for the out-of-fold probabilities
    barcode_min_conf: float = 0.8  # a barcode vote at least this sure counts as weak truth
    min_frames: int = 20  # fewer labelled frames with vectors: no model, weak truth only
    seed: int = 0


@dataclass
class AuditResult:
    day: str
    frames: int = 0  # merged labels audited
    suspects: list[dict[str, Any]] = field(default_factory=list)  # ranked, best first
    reasons: dict[str, int] = field(default_factory=dict)
    estimated_error_rate: float = 0.0  # confident learning's estimate of the share of wrong labels
    model: str = ""  # how the out-of-fold probabilities were made (or why not)


def out_of_fold_probs(x: np.ndarray, y: np.ndarray, n_classes: int, folds: int, seed: int,
                      neighbours: int = 10) -> np.ndarray:
    """K-fold out-of-fold class probabilities of a cosine k-nearest-neighbour vote on the embeddings
    (each frame is scored only by frames of the other folds). k-NN rather than a linear model: it
    is seconds on thousands of frames, and an item's other frames are its strongest witnesses.
    Classes too small for K folds still get a column (sklearn fills the folds they miss with 0)."""
    import warnings

    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    counts = np.bincount(y, minlength=n_classes)
    k = int(max(2, min(folds, counts[counts > 0].max())))
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    model = KNeighborsClassifier(n_neighbors=neighbours, weights="distance", metric="euclidean")
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # tiny classes: "least populated class has only 1 member"
        warnings.simplefilter("ignore")
        probs = cross_val_predict(model, unit, y, cv=cv, method="predict_proba")
    full = np.zeros((len(y), n_classes))
    full[:, : probs.shape[1]] = probs  # classes are 0..n-1, all present in y
    full = 0.98 * full + 0.02 / n_classes  # no hard zeros: cleanlab's thresholds need some mass
    return full / full.sum(axis=1, keepdims=True)


def weak_truth(votes: list[dict[str, Any]] | None, config: AuditConfig) -> tuple[str | None, set[str] | None]:
    """(barcode SKU when sure, weight-compatible SKUs when the weight labeler named a short list:
    its vote's `candidates`, read as the routing reads them, `tables.vote_candidates`)."""
    from flywheel.label.tables import vote_candidates

    barcode, weight = None, None
    for v in votes or []:
        sure = (v.get("confidence") or 0) >= config.barcode_min_conf
        if v["labeler"] == "barcode" and v.get("label") and sure:
            barcode = v["label"]
    short = [c for c in vote_candidates(votes, "weight") if len(c) < WEIGHT_LIST_CAP]
    if short:
        weight = set(short[-1])
    return barcode, weight


def audit_rows(day: str, labels: dict[str, str | None], vectors: dict[str, np.ndarray],
               votes: dict[str, list[dict[str, Any]]], config: AuditConfig | None = None) -> AuditResult:
    """Audit one day: `labels` frame -> merged label (None = no product), `vectors` frame -> embedding,
    `votes` frame -> the pre-labelers' votes. Pure: reads nothing, writes nothing."""
    from cleanlab.count import num_label_issues
    from cleanlab.filter import find_label_issues

    config = config or AuditConfig()
    res = AuditResult(day=day, frames=len(labels))
    ids = sorted(labels)
    names = sorted({labels[f] or EMPTY for f in ids})
    cls = {n: i for i, n in enumerate(names)}
    scored = [f for f in ids if f in vectors]
    flagged: dict[str, float] = {}  # frame -> self-confidence of its label
    suggested: dict[str, str] = {}
    if len(scored) >= config.min_frames and len(names) >= 2:
        x = np.stack([vectors[f] for f in scored]).astype(np.float32)
        y = np.array([cls[labels[f] or EMPTY] for f in scored])
        probs = out_of_fold_probs(x, y, len(names), config.folds, config.seed)
        import warnings

        with warnings.catch_warnings():  # "too few examples" of a rare class: it is still scored
            warnings.simplefilter("ignore", UserWarning)
            # n_jobs=1: no fork (LanceDB's runtime is not fork-safe, and the machine is shared)
            issues = find_label_issues(y, probs, filter_by="prune_by_noise_rate", n_jobs=1)
        res.estimated_error_rate = round(float(num_label_issues(y, probs)) / len(scored), 4)
        self_conf = probs[np.arange(len(y)), y]
        for i in np.flatnonzero(issues):
            flagged[scored[i]] = float(self_conf[i])
            suggested[scored[i]] = names[int(probs[i].argmax())]
        res.model = (f"cosine 10-NN on {x.shape[1]}-d index embeddings, {len(scored)} frames, "
                     f"{len(names)} classes, out-of-fold over {config.folds} stratified folds")
    else:
        res.model = f"none: {len(scored)} frame(s) with vectors, {len(names)} class(es)"
    for f in ids:
        label = labels[f]
        barcode, weight = weak_truth(votes.get(f), config)
        reasons = []
        corroborated = label is not None and (barcode == label or (weight is not None and label in weight))
        if f in flagged and not corroborated:  # weak truth that agrees outweighs the embedding model
            reasons.append("cleanlab")
        if barcode is not None and label is not None and barcode != label:
            # a frame of the insertion may show no product (hand in, item out of view): only a
            # label naming another SKU contradicts the read
            reasons.append("barcode")
            suggested.setdefault(f, barcode)
        if weight is not None and label is not None and label not in weight:
            reasons.append("weight")
        if not reasons:
            continue
        # weak truth outranks the model; within a kind, the less the model believes the label the higher
        score = 2.0 * ("barcode" in reasons) + 1.0 * ("weight" in reasons) + 1.0 * ("cleanlab" in reasons) \
            + (1.0 - flagged.get(f, 1.0))
        res.suspects.append({"frame_id": f, "label": label, "score": round(score, 6),
                             "reasons": ",".join(reasons),
                             "suggested": suggested.get(f), "self_confidence": flagged.get(f)})
        for r in reasons:
            res.reasons[r] = res.reasons.get(r, 0) + 1
    res.suspects.sort(key=lambda s: (-s["score"], s["frame_id"]))
    for i, s in enumerate(res.suspects, start=1):
        s["rank"] = i
    if not res.estimated_error_rate and res.frames:
        res.estimated_error_rate = round(len(res.suspects) / res.frames, 4)
    return res


def suspects_schema():  # noqa: ANN201 - pyarrow imported lazily
    import pyarrow as pa

    return pa.schema([("frame_id", pa.string()), ("label", pa.string()), ("rank", pa.int32()),
                      ("score", pa.float64()), ("reasons", pa.string()), ("suggested", pa.string()),
                      ("self_confidence", pa.float64())])


def index_vectors(lake: Lake, day: str, location: Any = None) -> dict[str, np.ndarray]:
    """The day's frame embeddings from the Depot's LanceDB index ({} without an index): from the
    current encoder's table, or for a day indexed under an earlier production model (a backfill
    over history) from that model's table (index.frame_tables)."""
    from flywheel.depot.index import _sql_str, frame_tables

    try:
        tables = frame_tables(lake, location)
    except LookupError:
        return {}
    where = f"date = {_sql_str(day)}"
    for table in tables:
        t = table.search().where(where).select(["frame_id", "vector"]).limit(None).to_arrow()
        ids = t.column("frame_id").to_pylist()
        if ids:
            flat = np.asarray(t.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False),
                              np.float32)
            return dict(zip(ids, flat.reshape(len(ids), -1), strict=True))
    return {}


def audit_day(lake: Lake, day: str, location: Any = None, config: AuditConfig | None = None) -> AuditResult:
    """Audit the day's merged labels and write suspects.parquet and summary.json (labels untouched)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from flywheel.label.merge import read_merged
    from flywheel.label.tables import read_prelabels

    merged = read_merged(lake, day)
    labels = dict(zip(merged.column("frame_id").to_pylist(), merged.column("label").to_pylist(), strict=True))
    pre = read_prelabels(lake, day, columns=["frame_id", "votes"]).to_pylist()
    votes = {r["frame_id"]: r["votes"] for r in pre}
    res = audit_rows(day, labels, index_vectors(lake, day, location), votes, config)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(res.suspects, schema=suspects_schema()), sink, compression="zstd")
    lake.put(audit_key(day, "suspects.parquet"), memoryview(sink.getvalue()))
    lake.put(audit_key(day, "summary.json"), json.dumps(
        {"frames": res.frames, "suspects": len(res.suspects), "reasons": res.reasons,
         "estimated_error_rate": res.estimated_error_rate, "model": res.model},
        indent=1, sort_keys=True).encode())
    return res


def read_suspects(lake: Lake, day: str) -> list[dict[str, Any]]:
    """The day's audit suspects in rank order ([] before an audit)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(pa.BufferReader(lake.get(audit_key(day, "suspects.parquet")))).to_pylist()
    except ObjectNotFound:
        return []
