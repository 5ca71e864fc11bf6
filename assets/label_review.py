"""Label stage, review half: review_queue -> (humans, via landing/corrections/) -> merged_labels.
Thin: the work is in flywheel.label.{routing,review_tasks,corrections,merge}."""


from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from assets.depot import capture_days
from flywheel.defaults import default_of
from flywheel.label.grouping import GroupingConfig
from flywheel.label.routing import RoutingConfig, second_look
from flywheel.refs import LabelsRef
from resources.index import IndexResource
from resources.lake import LakeResource

PRELABELS = dg.AssetKey("prelabels")
AUDIT_ERROR_THRESHOLD = 0.05  # upper 95 % bound of the auto-label error rate we accept


class ReviewConfig(dg.Config):
    budget_s: float = Field(default_of(RoutingConfig, "budget_s"),
                            description="Human seconds per iteration (per capture day and run).")
    accept_threshold: float = Field(default_of(RoutingConfig, "accept_threshold"),
                                    description="Auto-accept pre-labels at or above this calibrated "
                                                "confidence (and without disagreement or mismatch).")
    audit_rate: float | None = Field(default_of(RoutingConfig, "audit_rate"),
                                     description="Share of auto-accepted frames drawn for a human audit; "
                                                 "unset: a sample sized for audit_half_width.")
    audit_half_width: float = Field(default_of(RoutingConfig, "audit_half_width"),
                                    description="Target half-width of the audited auto-label error rate's "
                                                "95 % interval (sizes the audit sample: a count).")
    class_quota: int = Field(default_of(RoutingConfig, "class_quota"),
                             description="Doubtful tasks per predicted class per run, most doubtful first; "
                                         "the rest wait for the next run (0 = no quota).")
    max_review_tasks: int = Field(default_of(RoutingConfig, "max_review_tasks"),
                                  description="Doubtful tasks one run takes at most (a batch: a count that "
                                              "does not grow with the fleet; 0 = no cap).")
    max_task_s: float = Field(default_of(RoutingConfig, "max_task_s"),
                              description="A doubtful task expected to cost more than this many seconds "
                                          "(a pick from the catalog) waits while cheaper doubtful work "
                                          "remains (0 = never).")
    seed: int = Field(default_of(RoutingConfig, "seed"),
                      description="Seed of the audit draw (stable per frame).")
    trust_calibration: bool = Field(default_of(RoutingConfig, "trust_calibration"),
                                    description="Once the ensemble is calibrated on human reviews, accept "
                                                "a disagreement or barcode mismatch it is still sure about.")
    trust_sensors: bool = Field(default_of(RoutingConfig, "trust_sensors"),
                                description="Accept a confident label the barcode read and the load cell "
                                            "both vouch for, even when a vision labeler disagrees.")
    backlog_days: int = Field(default_of(RoutingConfig, "backlog_days"),
                              description="Deferred frames of earlier capture days this many days back "
                                          "come back in this run's queue, oldest first, within the same "
                                          "batch and budget (0 = only a re-run of their own day).")
    max_boxes: int = Field(default_of(RoutingConfig, "max_boxes"),
                           description="Tasks whose leader the production detector does not box also ask "
                                       "for a box (extreme clicking, within the budget), at most this many "
                                       "a run: the detector learns the stores only from drawn boxes "
                                       "(0 = never).")
    near_duplicate_distance: float = Field(default_of(GroupingConfig, "max_distance"),
                                           description="Cosine distance under which frames of one clip form "
                                                       "one task (LanceDB index vectors).")


def _summary_md(counts: dict[str, int]) -> str:
    return "\n".join(["| route | frames |", "|---|---|"] + [f"| {k} | {v} |" for k, v in counts.items()])


@dg.asset(partitions_def=capture_days, group_name="label", deps=[PRELABELS],
          description="Confidence routing under a human budget: doubtful pre-labels first (abstained, "
                      "labelers disagree, vision vs barcode), then a random audit sample of the "
                      "auto-accepted; near-duplicates of a clip form one task. Writes routes, tasks, "
                      "Label Studio tasks with predictions, COCO and YOLO exports under label/review/.")
def review_queue(context: dg.AssetExecutionContext, config: ReviewConfig, lake: LakeResource,
                 index: IndexResource) -> dg.MaterializeResult:
    from flywheel.label.merge import read_summary
    from flywheel.label.queue import queue_day

    day = context.partition_key
    the_lake = lake.lake()
    rcfg = RoutingConfig(budget_s=config.budget_s, accept_threshold=config.accept_threshold,
                         audit_rate=config.audit_rate, audit_half_width=config.audit_half_width,
                         class_quota=config.class_quota, max_review_tasks=config.max_review_tasks,
                         max_task_s=config.max_task_s,
                         seed=config.seed,
                         trust_calibration=config.trust_calibration, trust_sensors=config.trust_sensors,
                         backlog_days=config.backlog_days, max_boxes=config.max_boxes)
    routing, keys, grouping = queue_day(the_lake, day, rcfg, index.location(the_lake),
                                        config.near_duplicate_distance, context.run_id)
    counts = {r: routing.count(r) for r in ("auto", "review", "conflict", "audit", "deferred", "human")}
    kinds = {k: sum(1 for t in routing.tasks if t.kind == k) for k in ("conflict", "review", "audit")}
    grouped = sum(len(t.frame_ids) - 1 for t in routing.tasks)

    def routes_saying(phrase: str) -> int:  # deferred frames by cause: the routing writes it in the reason
        return sum(1 for r in routing.routes if phrase in (r["reason"] or ""))

    last = read_summary(the_lake, day)
    meta: dict[str, object] = {
        "frames_in": len(routing.routes),
        "tasks": len(routing.tasks),
        "tasks_by_kind": dg.MetadataValue.json(kinds),
        "routes": dg.MetadataValue.md(_summary_md(counts)),
        "auto_accepted": counts["auto"],
        "deferred_over_budget": counts["deferred"],  # every deferred frame (quota, batch, budget)
        "deferred_over_class_quota": routes_saying("class quota"),
        "deferred_over_batch": routes_saying("over the batch"),
        "deferred_costly": routes_saying("cheaper doubtful work"),
        "deferred_no_evidence": routes_saying("no evidence"),
        # earlier days' deferred frames: taken into this run's tasks, deferred again, from which days
        "backlog_routed": sum(1 for r in routing.backlog if r["task_id"]),
        "backlog_deferred_again": sum(1 for r in routing.backlog if not r["task_id"]),
        "backlog_days": dg.MetadataValue.json(sorted({r["origin_day"] for r in routing.backlog})),
        "audit_sample": kinds["audit"],
        "near_duplicates_folded": grouped,
        # second looks at human labels the frame rules out, by what rules them out
        "second_looks_human_vs_barcode": sum(1 for t in routing.tasks if second_look("barcode") in t.reason),
        "second_looks_human_vs_load_cell": sum(1 for t in routing.tasks
                                               if second_look("load cell") in t.reason),
        "tasks_with_candidate_list": sum(1 for t in routing.tasks if t.candidates),
        "boxes_requested": sum(1 for t in routing.tasks if t.draw_box),
        "near_duplicate_grouping": grouping,
        "budget_s": config.budget_s,
        "planned_human_s": dg.MetadataValue.float(routing.planned_s),
        "budget_used": dg.MetadataValue.float(round(routing.planned_s / config.budget_s, 4)
                                              if config.budget_s else 0.0),
        "exports": dg.MetadataValue.json({k: the_lake.url(v) for k, v in keys.items()}),
    }
    if last:  # what the humans' audit answers said so far
        a = last["audit"]
        meta["auto_error_rate_audited"] = dg.MetadataValue.float(round(a["rate"], 4))
        meta["auto_error_rate_ci95"] = dg.MetadataValue.json([round(a["ci_low"], 4), round(a["ci_high"], 4)])
        meta["audited_frames"] = int(a["n"])
    return dg.MaterializeResult(metadata=meta)


class MergeConfig(dg.Config):
    detector_hints: bool = Field(True, description="Give item labels nobody drew a box on the empty "
                                                  "filter's foreground box, and add its clean empties "
                                                  "(flywheel.label.filter_hints).")


@dg.asset(partitions_def=capture_days, group_name="label", deps=[review_queue],
          io_manager_key="ref_io_manager",
          check_specs=[dg.AssetCheckSpec("auto_label_error", asset="merged_labels",
                                         description="upper 95 % Wilson bound of the audited auto-label "
                                                     "error rate")],
          description="Auto-accepted pre-labels and human corrections merged with provenance (who, "
                      "when, tool, task, previous label): human beats auto, a later knowing human "
                      "beats an earlier one, independent disagreement goes back to the queue. "
                      "label/merged/date=D/ (merged.parquet, conflicts.parquet, frames.parquet).")
def merged_labels(context: dg.AssetExecutionContext, config: MergeConfig, lake: LakeResource
                  ) -> Iterator[dg.Output[LabelsRef] | dg.AssetCheckResult]:
    from flywheel.label.merge import labels_ref, merge_labels_day, merged_key

    day = context.partition_key
    the_lake = lake.lake()
    result, batch_ids, n_frames = merge_labels_day(the_lake, day, detector_hints=config.detector_hints)
    a = result.audit
    tools: dict[str, int] = {}
    for r in result.rows:
        if r["source"] == "human":
            tools[r["tool"]] = tools.get(r["tool"], 0) + 1
    yield dg.Output(labels_ref(the_lake, day, n_frames), metadata={
        "labels": len(result.rows),
        "auto": result.counts["auto"],
        "human": result.counts["human"],
        "human_changed_label": result.counts["human_changed"],
        "conflicts_back_to_queue": result.counts["conflicts"],
        "human_held_for_a_second_look": result.counts["held"],  # the frame itself rules the label out
        "pending_review": result.counts["pending"],
        "correction_batches": len(batch_ids),
        "human_labels_by_tool": dg.MetadataValue.json(tools),
        "auto_error_rate_audited": dg.MetadataValue.float(round(a["rate"], 4)),
        "auto_error_rate_ci95": dg.MetadataValue.json([round(a["ci_low"], 4), round(a["ci_high"], 4)]),
        "audited_frames": int(a["n"]),
        "labelled_frames": n_frames,
        # item frames boxed by the empty filter's foreground, and its clean empties added
        # (flywheel.label.filter_hints): the item detector's store data at no human cost
        "foreground_boxes": result.counts.get("foreground_boxes", 0),
        "filter_empties": result.counts.get("filter_empties", 0),
        "path": dg.MetadataValue.path(the_lake.url(merged_key(day))),
        "exports": dg.MetadataValue.json({n: the_lake.url(merged_key(day, n))
                                          for n in ("coco.json", "yolo.zip")}),
        "human_boxes": sum(1 for r in result.rows if r.get("box") is not None),
    })
    yield dg.AssetCheckResult(
        check_name="auto_label_error", passed=a["n"] == 0 or a["ci_high"] <= AUDIT_ERROR_THRESHOLD,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"actual": float(round(a["ci_high"], 4)) if a["n"] else 0.0,
                  "threshold": AUDIT_ERROR_THRESHOLD, "audited": int(a["n"]), "errors": int(a["errors"])})
