"""A short list from the shelf for frames no labeler could narrow down.

Some kept frames carry no evidence at all: no barcode read, no weight step inside the clip (the item
lands after the clip ends), a teacher no better than chance. Without a list the annotator picks the
SKU from the whole catalog (TimeModel.pick_s, 15 s for 30 SKUs). But the cart knows where it is
(the sidecar's location series, the Depot's `aisle` column) and a store shelves a category per
aisle, so the SKUs people already labelled in the same store and aisle, then the rest of the
catalog categories seen there, are a short list that usually holds the answer. Learned from human
labels only (merged labels with source "human"), never from ground truth.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from edge_agent.lake import Lake

Shelf = tuple[str | None, str | None]  # (store_id, aisle)


def shelf_prior(labelled: Iterable[tuple[Shelf, str | None]]) -> dict[Shelf, Counter]:
    """(store, aisle) -> how often people labelled each SKU there ("no product" does not count)."""
    prior: dict[Shelf, Counter] = {}
    for shelf, label in labelled:
        if label is not None and shelf[1]:
            prior.setdefault(shelf, Counter())[label] += 1
    return prior


def shelf_list(prior: Mapping[Shelf, Counter], shelf: Shelf,
               category_of: Mapping[str, str | None] | None = None, k: int = 8) -> list[str]:
    """At most `k` SKUs for this shelf: those labelled here, most often first, then the other
    products of the categories labelled here (`category_of`: SKU -> catalog category)."""
    seen = prior.get(shelf)
    if not seen:
        return []
    out = [sku for sku, _ in sorted(seen.items(), key=lambda kv: (-kv[1], kv[0]))]
    cats = Counter()
    for sku, n in seen.items():
        if (category_of or {}).get(sku):
            cats[category_of[sku]] += n
    for cat, _ in sorted(cats.items(), key=lambda kv: (-kv[1], kv[0])):
        out += sorted(s for s, c in (category_of or {}).items() if c == cat and s not in out)
    return out[:k]


def fill_lists(rows: Sequence[dict[str, Any]], shelf_of: Mapping[str, Shelf], prior: Mapping[Shelf, Counter],
               category_of: Mapping[str, str | None] | None = None, k: int = 8) -> list[dict[str, Any]]:
    """The pre-label rows, where one has neither a label nor a candidate list, given its shelf's
    list (marked `shelf_list`); every other row unchanged."""
    out = []
    for r in rows:
        if r.get("label") is None and not r.get("candidates"):
            cands = shelf_list(prior, shelf_of.get(r["frame_id"], (None, None)), category_of, k)
            if cands:
                r = {**r, "candidates": cands, "shelf_list": True}
        out.append(r)
    return out


def read_shelves(lake: Lake, days: Iterable[str]) -> dict[str, Shelf]:
    """frame_id -> (store, aisle) of the Depot frames of `days`."""
    from flywheel.depot.ingest import read_frames

    out: dict[str, Shelf] = {}
    for day in days:
        t = read_frames(lake, day, columns=["frame_id", "store_id", "aisle"])
        if t is not None:
            out.update({r["frame_id"]: (r["store_id"], r["aisle"]) for r in t.to_pylist()})
    return out


def human_shelf_prior(lake: Lake, day: str, limit_days: int = 14
                      ) -> tuple[dict[Shelf, Counter], dict[str, Shelf]]:
    """(the prior from people's labels on the latest `limit_days` merged days up to `day`, the
    shelves of `day`'s frames)."""
    from flywheel.label.merge import MERGED, read_merged

    days = sorted({i.key.split("/")[2].removeprefix("date=") for i in lake.list(f"{MERGED}/")
                   if i.key.endswith("merged.parquet") and "/date=" in i.key})
    days = [d for d in days if d <= day][-limit_days:]
    shelves = read_shelves(lake, sorted({*days, day}))
    labelled = []
    for d in days:
        for r in read_merged(lake, d).select(["frame_id", "label", "source"]).to_pylist():
            if r["source"] == "human" and r["frame_id"] in shelves:
                labelled.append((shelves[r["frame_id"]], r["label"]))
    return shelf_prior(labelled), shelves
