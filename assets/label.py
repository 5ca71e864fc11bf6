"""Label assets, pre-label half: Depot frames -> empty-background filter (label_candidates) ->
the pre-label ensemble (prelabels). Thin: the work is in `flywheel.label`."""

import dagster as dg
from pydantic import Field

from assets.depot import capture_days, depot_frames
from resources.encoder import EncoderResource
from resources.labelers import LabelersResource
from resources.lake import LakeResource

KEPT_SHARE_THRESHOLD = 0.9  # a filter that keeps more than this share of a day drops almost nothing


class FilterSettings(dg.Config):
    area_insertion: float = Field(0.03, description="Foreground share that keeps a frame inside an "
                                                    "insertion (the second before a weight step).")
    area_other: float = Field(0.04, description="Foreground share that keeps a frame elsewhere.")
    noise_k: float = Field(4.0, description="Per-pixel threshold in units of the camera's idle noise.")


@dg.asset(partitions_def=capture_days, group_name="label", deps=[depot_frames],
          check_specs=[dg.AssetCheckSpec("kept_share", asset="label_candidates",
                                         description="share of the day's frames the filter keeps")],
          description="Every Depot frame of the day with the empty-background filter's verdict (kept, "
                      "empty_score, reason) and its hints for the item detector (a kept frame's "
                      "foreground box, clean empties) at label/candidates/date=D/candidates.parquet; "
                      "once humans "
                      "have labelled frames, an empty-vs-object head on the embeddings drops more.")
def label_candidates(context: dg.AssetExecutionContext, config: FilterSettings,
                     lake: LakeResource, encoder: EncoderResource) -> dg.MaterializeResult:
    from flywheel.label import tables
    from flywheel.label.background import FilterConfig, candidates_rows
    from flywheel.label.empty_head import train_head

    the_lake = lake.lake()
    day = context.partition_key
    enc = encoder.encoder(the_lake)
    head, n_human = train_head(the_lake, enc)  # once humans have labelled frames
    rows, res = candidates_rows(the_lake, day, FilterConfig(
        area_insertion=config.area_insertion, area_other=config.area_other, noise_k=config.noise_k),
        head=head, encoder=enc)
    tables.write_candidates(the_lake, day, rows)
    kept = sum(res.kept)
    share = kept / len(rows) if rows else 0.0
    check = dg.AssetCheckResult(check_name="kept_share", passed=share <= KEPT_SHARE_THRESHOLD,
                                severity=dg.AssetCheckSeverity.WARN,
                                metadata={"actual": round(share, 4), "threshold": KEPT_SHARE_THRESHOLD})
    return dg.MaterializeResult(metadata={
        "frames_in": len(rows), "kept": kept, "dropped": len(rows) - kept,
        "kept_share": dg.MetadataValue.float(round(share, 4)),
        "unreadable_frames": res.unreadable,
        "empty_head": (f"trained on {head.n_empty} empty + {head.n_object} item frames ({head.encoder_id})"
                       if head else f"not trained ({n_human} human labels so far)"),
        "dropped_by_head": res.dropped_by_head,
        # what the item detector learns from at no human cost (flywheel.label.filter_hints)
        "foreground_boxes": sum(b is not None for b in res.fg_box),
        "clean_empties": sum(res.clean_empty),
        "device_pixel_threshold": dg.MetadataValue.json(res.device_threshold),
        "path": dg.MetadataValue.path(the_lake.url(tables.candidates_key(day))),
    }, check_results=[check])


@dg.asset(partitions_def=capture_days, group_name="label", deps=[label_candidates],
          description="Every kept frame with each labeler's vote (barcode, weight, teacher, OCR reader, "
                      "VLM), the calibrated ensemble label and confidence, and the labelers' versions, "
                      "at label/prelabels/date=D/prelabels.parquet.")
def prelabels(context: dg.AssetExecutionContext, lake: LakeResource,
              labelers: LabelersResource) -> dg.MaterializeResult:
    from flywheel.label import tables
    from flywheel.label.catalog import read_catalog
    from flywheel.label.ensemble import fit
    from flywheel.label.plots import prelabels_png
    from flywheel.label.prelabel import prelabel_day, reviewed_items
    from flywheel.label.routing import RoutingConfig
    from flywheel.learner.plots import png_markdown

    the_lake = lake.lake()
    day = context.partition_key
    try:
        products = read_catalog(the_lake)
    except Exception as e:  # noqa: BLE001 - no catalog, nothing to label against: say so
        raise dg.Failure(description=f"no product catalog in the Depot: {e}") from e
    labs, status = labelers.build(the_lake, products)
    cal = fit(reviewed_items(the_lake), n_classes=len(products))
    report = prelabel_day(the_lake, day, labs, cal)
    meta = {f"{name}": status[name] for name in status}  # e.g. "vlm": "not configured"
    meta.update(report.metadata())
    meta["calibration_reviewed_items"] = cal.n_reviewed
    meta["calibration_weights"] = dg.MetadataValue.json(cal.weights)
    meta["path"] = dg.MetadataValue.path(the_lake.url(tables.prelabels_key(day)))
    written = tables.read_prelabels(the_lake, day, columns=["label", "confidence", "votes", "disagreement"])
    meta["votes_and_confidence"] = dg.MetadataValue.md(png_markdown(
        prelabels_png(written.to_pylist(), RoutingConfig().accept_threshold), "votes and confidence"))
    for k, v in list(meta.items()):
        if isinstance(v, dict):
            meta[k] = dg.MetadataValue.json(v)
    return dg.MaterializeResult(metadata=meta)
