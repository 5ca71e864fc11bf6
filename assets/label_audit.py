"""Label stage, the ground-truth audit: a capture-day partitioned asset meant to be backfilled over
history. Thin: the work is in flywheel.label.audit. It never changes a label; its suspects go to
human review (`flywheel label push` puts them in the day's Label Studio project)."""

import dagster as dg
from pydantic import Field

from assets.depot import capture_days
from flywheel.defaults import default_of
from flywheel.label.audit import AuditConfig
from resources.index import IndexResource
from resources.lake import LakeResource

MERGED_LABELS = dg.AssetKey("merged_labels")
SUSPECT_RATE_THRESHOLD = 0.10  # a day with more suspects than this share of its labels warns


class LabelAuditConfig(dg.Config):
    folds: int = Field(default_of(AuditConfig, "folds"),
                       description="Cross-validation folds of the out-of-fold probabilities.")
    barcode_min_conf: float = Field(default_of(AuditConfig, "barcode_min_conf"),
                                    description="A barcode vote at least this sure counts as weak truth.")
    min_frames: int = Field(default_of(AuditConfig, "min_frames"),
                            description="Below this many labelled frames with embeddings: weak truth only.")
    seed: int = Field(default_of(AuditConfig, "seed"), description="Seed of the fold split.")


def _top_md(suspects: list[dict], n: int = 15) -> str:
    rows = ["| rank | frame | label | reasons | suggested |", "|---|---|---|---|---|"]
    rows += [f"| {s['rank']} | {s['frame_id']} | {s['label']} | {s['reasons']} | {s['suggested']} |"
             for s in suspects[:n]]
    return "\n".join(rows)


@dg.asset(partitions_def=capture_days, group_name="label", deps=[MERGED_LABELS],
          check_specs=[dg.AssetCheckSpec("suspect_rate", asset="label_audit",
                                         description="share of the day's merged labels the audit suspects")],
          description="Ground-truth audit of merged labels (run as a backfill over history): cleanlab "
                      "find_label_issues on out-of-fold probabilities (logistic regression on the index "
                      "embeddings, K stratified folds) plus weak truth no model supplies (the insertion's "
                      "barcode read and weight step). Ranked suspects under label/audit/date=D/; labels "
                      "are never changed.")
def label_audit(context: dg.AssetExecutionContext, config: LabelAuditConfig, lake: LakeResource,
                index: IndexResource) -> dg.MaterializeResult:
    from flywheel.label.audit import audit_day, audit_key

    the_lake = lake.lake()
    res = audit_day(the_lake, context.partition_key, index.location(the_lake),
                    AuditConfig(folds=config.folds, barcode_min_conf=config.barcode_min_conf,
                                min_frames=config.min_frames, seed=config.seed))
    rate = len(res.suspects) / res.frames if res.frames else 0.0
    check = dg.AssetCheckResult(check_name="suspect_rate", passed=rate <= SUSPECT_RATE_THRESHOLD,
                                severity=dg.AssetCheckSeverity.WARN,
                                metadata={"actual": float(round(rate, 4)),
                                          "threshold": SUSPECT_RATE_THRESHOLD, "suspects": len(res.suspects)})
    return dg.MaterializeResult(check_results=[check], metadata={
        "labels_audited": res.frames,
        "suspects": len(res.suspects),
        "suspect_rate": dg.MetadataValue.float(round(rate, 4)),
        "estimated_label_error_rate": dg.MetadataValue.float(res.estimated_error_rate),
        "suspects_by_reason": dg.MetadataValue.json(res.reasons),
        "model": res.model,
        "top_suspects": dg.MetadataValue.md(_top_md(res.suspects)),
        "path": dg.MetadataValue.path(the_lake.url(audit_key(context.partition_key, "suspects.parquet"))),
    })
