"""A finished capture's sidecar (ClipSidecarV2: V1 plus the insertions decided within the clip):
built where the clip is encoded, in the capture worker's thread or in the encoder child process."""

from __future__ import annotations

from datetime import UTC

from edge_agent.capture.recorder import CaptureJob
from edge_agent.contract.layout import clip_id_from_sha256
from edge_agent.contract.schemas import (
    BarcodeRead,
    ClipInfo,
    ClipSidecarV2,
    FramePrediction,
    InsertionSummary,
    LocationSample,
    TriggerFiring,
    WeightSample,
)


def build_sidecar(job: CaptureJob, *, sha256: str, size: int, clip, device_id: str, store_id: str,
                  agent_version: str) -> ClipSidecarV2:
    frames = job.frames
    t0 = frames[0].t
    started = frames[0].wall.astimezone(UTC)
    firings = []
    for i, r in enumerate(frames):
        for f in r.firings:
            firings.append(TriggerFiring(rule=f"{f.rule}: {f.expr}"[:200], frame=i,
                                         value=_scalar(f.value), signals=f.signals))
    reads = [BarcodeRead(frame=i, format=b.format[:32], text=b.text[:64])
             for i, r in enumerate(frames) for b in r.barcodes]
    weights = [WeightSample(t=round(r.t - t0, 4), grams=r.weight_g)
               for r in frames if r.weight_g is not None]
    locations = [LocationSample(t=round(r.t - t0, 4), aisle=r.location[0][:64], x_m=r.location[1])
                 for r in frames if r.location is not None]
    preds = [FramePrediction(index=i, t=round(r.t - t0, 4), prediction=r.prediction,
                             confidence=min(1.0, max(0.0, r.confidence)))
             for i, r in enumerate(frames)]
    return ClipSidecarV2(
        clip_id=clip_id_from_sha256(sha256), device_id=device_id, store_id=store_id,
        capture_date=started.date().isoformat(), started_at=started,
        model_version=job.model_version, rule_set_version=job.rule_set_version,
        agent_version=agent_version, priority=job.priority,
        clip=ClipInfo(sha256=sha256, size_bytes=size, codec="h264", width=clip.width,
                      height=clip.height, fps=clip.fps, frame_count=clip.frame_count,
                      duration_s=clip.duration_s),
        triggers=firings, barcode_reads=reads, weight_series=weights, location_series=locations,
        frames=preds, insertions=insertions(frames))


def insertions(frames: list) -> list[InsertionSummary]:
    """The insertions closed on a frame of this clip, with their span in clip frame indices, and
    one still open at the clip's end (`ended_after_clip`)."""
    out = []
    for i, r in enumerate(frames):
        d = r.insertion
        if d is None:
            continue
        first = next((j for j in range(i + 1) if d.first_t is None or frames[j].t >= d.first_t), i)
        out.append(InsertionSummary(
            first_frame=first, last_frame=i,
            began_before_clip=d.first_t is not None and frames[0].t > d.first_t,
            ended_after_clip=d.open,
            label=_cut(d.label), confidence=_unit(d.confidence), source=d.source,
            n_frames=d.n_frames, n_voting=d.n_voting, vote_label=_cut(d.vote_label),
            vote_confidence=_unit(d.vote_confidence), barcode=_cut(d.barcode)))
    return out


def _cut(label: str | None) -> str | None:
    return None if label is None else label[:64]  # labels come from the model's card: bounded here


def _unit(x: float) -> float:
    return min(1.0, max(0.0, float(x)))


def _scalar(v: object) -> float | str | bool | None:
    if v is None or isinstance(v, bool | str):
        return v
    if isinstance(v, int | float):
        return float(v)
    return str(v)


