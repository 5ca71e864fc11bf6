"""Depot assets: landing clips -> frames (Parquet) -> LanceDB index; fleet rollup. Thin: the work is
in `flywheel.depot`; these wire resources, partitions and metadata for the UI."""

from datetime import UTC, datetime

import dagster as dg

from flywheel.depot.config import DepotConfig
from resources.lake import LakeResource

# Capture days, registered by the landing sensor as clips arrive (a day exists once data does).
capture_days = dg.DynamicPartitionsDefinition(name="capture_day")

landing_clips = dg.AssetSpec(
    "landing_clips", group_name="depot",
    description="Clips (H.264 .mp4) and sidecars (.json) devices upload under landing/clips/; "
                "written by the fleet, watched by the landing sensor.")


class IngestConfig(dg.Config):
    frame_every: int = 8  # sample every Nth frame, plus every trigger and barcode frame
    max_clip_mb: float = 256.0  # bigger clips are quarantined unread
    pending_timeout_s: float = 900.0  # an incomplete clip waits this long before quarantine
    replay_samples: int = 1  # clips whose replay contact sheet is attached to the metadata

    def depot(self) -> DepotConfig:
        return DepotConfig(frame_every=self.frame_every, max_clip_bytes=int(self.max_clip_mb * 2**20),
                           pending_timeout_s=self.pending_timeout_s)


def _rejects_md(rejections: list) -> str:
    if not rejections:
        return "no rejects"
    lines = ["| key | reason | detail |", "|---|---|---|"]
    for r in rejections[:50]:
        lines.append(f"| `{r.key.rsplit('/', 1)[-1]}` | {r.reason} | {r.detail[:120].replace('|', '/')} |")
    return "\n".join(lines)


REJECT_RATE_THRESHOLD = 0.2  # more than this share of a day's clips rejected: look at the fleet


@dg.asset(partitions_def=capture_days, group_name="depot", deps=[landing_clips],
          check_specs=[dg.AssetCheckSpec("reject_rate", asset="depot_frames",
                                         description="share of the day's new clips quarantined")],
          description="Sampled frames of every complete clip of the day with device metadata and "
                      "image measures, as Parquet at depot/frames/date=D/part.parquet; bad input "
                      "is moved to depot/quarantine/ with its reason.")
def depot_frames(context: dg.AssetExecutionContext, config: IngestConfig,
                 lake: LakeResource) -> dg.MaterializeResult:
    from flywheel.depot.ingest import ingest_day
    from flywheel.depot.replay import replay_markdown

    day = context.partition_key
    the_lake = lake.lake()
    report = ingest_day(the_lake, day, config.depot(), now=datetime.now(UTC))
    reasons: dict[str, int] = {}
    for r in report.rejections:
        reasons[r.reason] = reasons.get(r.reason, 0) + 1
    for r in report.rejections:
        context.log.warning(f"quarantined {r.key}: {r.reason}: {r.detail}")
    meta: dict[str, object] = {
        "clips_ingested": len(report.clips_ingested),
        "clips_already_ingested": report.clips_already,
        "clips_pending": len(report.pending),
        "rejected_clips": report.rejected_clips,
        "quarantined_objects": len(report.rejections),
        "reject_rate": dg.MetadataValue.float(round(report.reject_rate, 4)),
        "reject_reasons": dg.MetadataValue.json(reasons),
        "quarantined": dg.MetadataValue.md(_rejects_md(report.rejections)),
        "frames_decoded": report.frames_decoded,
        "frames_written": report.frames_written,
        "rows_total": report.rows_total,
        "path": dg.MetadataValue.path(the_lake.url(report.frames_key)),
    }
    for clip_id in report.clips_ingested[: config.replay_samples]:
        try:
            meta[f"replay_{clip_id[:8]}"] = dg.MetadataValue.md(replay_markdown(the_lake, clip_id, day))
        except Exception as e:  # noqa: BLE001 - a picture must never fail the ingest
            context.log.warning(f"replay picture for {clip_id} failed: {e}")
    check = dg.AssetCheckResult(
        check_name="reject_rate", passed=report.reject_rate <= REJECT_RATE_THRESHOLD,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"actual": report.reject_rate, "threshold": REJECT_RATE_THRESHOLD,
                  "rejected_clips": report.rejected_clips})
    return dg.MaterializeResult(metadata=meta, check_results=[check])
