"""The loop as a whole: one asset downstream of the rollout that shows every turn's figures in the
UI (a table and a plot as metadata). Thin: the records are written by the turns (flywheel.loop)."""

import dagster as dg

from resources.lake import LakeResource


@dg.asset(group_name="loop", deps=["release_rollout"],
          description="Per-turn figures of the flywheel (loop/turns/): production top-1 per store "
                      "set, manual top-1, clips, frames, empties filtered, auto-labelled, human-reviewed "
                      "items and seconds, merged-label accuracy, model id and rollout stage reached; "
                      "wall seconds per stage and the cloud turn time.")
def flywheel_turns(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    from flywheel.learner.plots import png_markdown
    from flywheel.loop.turns import flywheel_png, read_turns, seconds_markdown, table_markdown

    records = read_turns(lake.lake())
    if not records:
        return dg.MaterializeResult(metadata={"turns": 0})
    last = records[-1]
    return dg.MaterializeResult(metadata={
        "turns": len(records),
        "last_turn": last.turn,
        "production_model": last.model_id or "none",
        "production_top1": dg.MetadataValue.json(last.production_top1),
        "human_seconds_total": round(sum(r.human_seconds for r in records), 1),
        "per_turn": dg.MetadataValue.md(table_markdown(records)),
        "seconds_per_stage": dg.MetadataValue.md(seconds_markdown(records)),
        "flywheel": dg.MetadataValue.md(png_markdown(flywheel_png(records), "flywheel per turn")),
        "records": dg.MetadataValue.json([
            {"turn": r.turn, "production_top1": r.production_top1, "manual_top1": r.manual_top1,
             "human_seconds": r.human_seconds, "model_id": r.model_id, "note": r.note,
             "stage_seconds": r.stage_seconds, "turn_time_s": r.turn_time_s,
             "turn_time_until": r.turn_time_until} for r in records]),
    })
