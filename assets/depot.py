"""Depot assets: landing clips -> frames (Parquet) -> LanceDB index; fleet rollup. Thin: the work is
in `flywheel.depot`; these wire resources, partitions and metadata for the UI."""

from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from flywheel.defaults import default_of
from flywheel.depot.config import DepotConfig
from flywheel.depot.fleet_rollup import rollup_day
from resources.encoder import EncoderResource
from resources.index import IndexResource
from resources.lake import LakeResource

# Capture days, registered by the landing sensor as clips arrive (a day exists once data does).
capture_days = dg.DynamicPartitionsDefinition(name="capture_day")

landing_clips = dg.AssetSpec(
    "landing_clips", group_name="depot",
    description="Clips (H.264 .mp4) and sidecars (.json) devices upload under landing/clips/; "
                "written by the fleet, watched by the landing sensor.")


class IngestConfig(dg.Config):
    frame_every: int = Field(default_of(DepotConfig, "frame_every"),
                             description="Sample every Nth frame, plus every trigger and barcode frame.")
    max_clip_mb: float = Field(default_of(DepotConfig, "max_clip_bytes") / 2**20,
                               description="Bigger clips are quarantined unread (oversize).")
    pending_timeout_s: float = Field(default_of(DepotConfig, "pending_timeout_s"),
                                     description="An incomplete clip waits this long before "
                                                 "quarantine (the sensor uses the same default).")
    replay_samples: int = Field(1, description="Clips whose replay contact sheet is attached to the "
                                               "materialization.")

    def depot(self) -> DepotConfig:
        return DepotConfig(frame_every=self.frame_every, max_clip_bytes=int(self.max_clip_mb * 2**20),
                           pending_timeout_s=self.pending_timeout_s)


REJECT_RATE_THRESHOLD = 0.2  # more than this share of a day's clips rejected: look at the fleet


@dg.asset(partitions_def=capture_days, group_name="depot", deps=[landing_clips],
          check_specs=[dg.AssetCheckSpec("reject_rate", asset="depot_frames",
                                         description="share of the day's new clips quarantined")],
          description="Sampled frames of every complete clip of the day with device metadata, "
                      "image measures, the frame JPEG and a thumbnail JPEG in each row, as Parquet "
                      "at depot/frames/date=D/part.parquet; bad input "
                      "is moved to depot/quarantine/ with its reason.")
def depot_frames(context: dg.AssetExecutionContext, config: IngestConfig, lake: LakeResource,
                 encoder: EncoderResource) -> dg.MaterializeResult:
    from flywheel.depot.ingest import ingest_day
    from flywheel.depot.replay import replay_markdown

    day = context.partition_key
    the_lake = lake.lake()
    # the frames are embedded while their pixels are decoded; depot_index then reuses the vectors
    report = ingest_day(the_lake, day, config.depot(), now=datetime.now(UTC),
                        encoder=encoder.encoder(the_lake))
    for r in report.rejections:
        context.log.warning(f"quarantined {r.key}: {r.reason}: {r.detail}")
    meta: dict[str, object] = {
        "clips_ingested": len(report.clips_ingested),
        "clips_already_ingested": report.clips_already,
        "clips_pending": len(report.pending),
        "rejected_clips": report.rejected_clips,
        "quarantined_objects": len(report.rejections),
        "reject_rate": dg.MetadataValue.float(round(report.reject_rate, 4)),
        "reject_reasons": dg.MetadataValue.json(report.reject_reasons()),
        "quarantined": dg.MetadataValue.md(report.rejects_markdown()),
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


@dg.asset(partitions_def=capture_days, group_name="depot", deps=[depot_frames],
          description="Frame embeddings of the day in the LanceDB search index (one table per "
                      "encoder; scalar indices on filter columns, a vector index once large).")
def depot_index(context: dg.AssetExecutionContext, lake: LakeResource, index: IndexResource,
                encoder: EncoderResource) -> dg.MaterializeResult:
    from flywheel.depot.index import index_day

    the_lake = lake.lake()
    enc = encoder.encoder(the_lake)
    report = index_day(the_lake, context.partition_key, enc, index.location(the_lake),
                       vector_index_min_rows=index.vector_index_min_rows)
    fps = report.rows_day / report.seconds_embed if report.seconds_embed else 0.0
    return dg.MaterializeResult(metadata={
        "table": report.table,
        "encoder": dg.MetadataValue.json(enc.spec),
        "dim": enc.dim,
        "rows_day": report.rows_day,
        "vectors_reused_from_ingest": report.vectors_reused,
        "rows_total": report.rows_total,
        "scalar_indices_created": dg.MetadataValue.json(report.scalar_indices),
        "vector_index": report.vector_index,
        "embed_frames_per_s": dg.MetadataValue.float(round(fps, 1)),
        "seconds_write": dg.MetadataValue.float(round(report.seconds_write, 3)),
    })


class FleetConfig(dg.Config):
    silence_s: float = Field(default_of(rollup_day, "silence_s"),
                             description="A device whose last report is older than this (at the end "
                                         "of the day) has stopped reporting.")
    max_drop_rate: float = Field(default_of(rollup_day, "max_drop_rate"),
                                 description="Flag devices whose dropped / (captured + dropped) is "
                                             "above this.")


@dg.asset(partitions_def=capture_days, group_name="depot", deps=[depot_frames],
          check_specs=[
              dg.AssetCheckSpec("devices_reporting", asset="depot_fleet_rollup",
                                description="devices that stopped sending status reports"),
              dg.AssetCheckSpec("drop_rate", asset="depot_fleet_rollup",
                                description="devices dropping too many captures")],
          description="Per-device and per-store daily rollup of status reports and landed clips: "
                      "fire rates by rule, captures, drops by cause, pauses, cleanups, upload "
                      "throughput, model versions in the field.")
def depot_fleet_rollup(context: dg.AssetExecutionContext, config: FleetConfig,
                       lake: LakeResource) -> dg.MaterializeResult:
    from flywheel.depot.fleet_rollup import rollup_chart_markdown, rollup_day

    the_lake = lake.lake()
    r = rollup_day(the_lake, context.partition_key, silence_s=config.silence_s,
                   max_drop_rate=config.max_drop_rate)
    totals = r.totals()
    checks = [
        dg.AssetCheckResult(check_name="devices_reporting", passed=not r.silent,
                            severity=dg.AssetCheckSeverity.WARN,
                            metadata={"actual": len(r.silent), "threshold": 0,
                                      "silence_s": config.silence_s,
                                      "devices": dg.MetadataValue.json(r.silent)}),
        dg.AssetCheckResult(check_name="drop_rate", passed=not r.dropping,
                            severity=dg.AssetCheckSeverity.WARN,
                            metadata={"actual": max((d.drop_rate for d in r.devices), default=0.0),
                                      "threshold": config.max_drop_rate,
                                      "devices": dg.MetadataValue.json(r.dropping)}),
    ]
    return dg.MaterializeResult(metadata={
        "devices": len(r.devices),
        "stores": len(r.by_store()),
        "captures": sum(d.captures for d in r.devices),
        "clips_landed": sum(d.clips_landed for d in r.devices),
        "fire_counts": dg.MetadataValue.json(totals["fires"]),
        "drops_by_cause": dg.MetadataValue.json(totals["drops"]),
        "model_versions_in_field": dg.MetadataValue.json(totals["model_versions"]),
        "by_store": dg.MetadataValue.md(r.by_store_markdown()),
        "flagged_devices": dg.MetadataValue.md(r.flagged_markdown()),
        "chart": dg.MetadataValue.md(rollup_chart_markdown(r)),
        "path": dg.MetadataValue.path(the_lake.url(r.key)),
    }, check_results=checks)


@dg.asset(partitions_def=capture_days, group_name="depot", deps=[depot_frames, dg.AssetKey("merged_labels")],
          description="Each capture rule's yield for the day: labels accepted (merged, auto or human) "
                      "per MB uploaded, per rule and rule set (campaign), joining the Label stage's "
                      "merged labels with the rules that fired on each clip. What `flywheel release "
                      "rules` weighs before shipping a rule set. depot/yield/date=D/rule_yield.json.")
def rule_yield(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    from flywheel.label.merge import read_merged
    from flywheel.release.rule_yield import ALL, rule_yield_day, write_rule_yield, yield_markdown

    the_lake, day = lake.lake(), context.partition_key
    merged = read_merged(the_lake, day)
    labels = dict(zip(merged.column("frame_id").to_pylist(), merged.column("label").to_pylist(), strict=True))
    rows = rule_yield_day(the_lake, day, labels)
    key = write_rule_yield(the_lake, day, rows)
    rules = [y for y in rows if y.rule != ALL]
    total = rows[-1] if rows else None
    return dg.MaterializeResult(metadata={
        "rules": len(rules),
        "labels_accepted": total.labels_accepted if total else 0,
        "mb_uploaded": round(total.bytes_uploaded / 1e6, 4) if total else 0.0,
        "labels_per_mb": round(total.labels_per_mb, 3) if total else 0.0,
        "labels_per_mb_by_rule": dg.MetadataValue.json(
            {f"{y.rule} @ {y.rule_set_version}": round(y.labels_per_mb, 3) for y in rules}),
        "best_rule": rules[0].rule if rules else "none",
        "worst_rule": rules[-1].rule if rules else "none",
        "by_rule": dg.MetadataValue.md(yield_markdown(rows)),
        "path": dg.MetadataValue.path(the_lake.url(key)),
    })
