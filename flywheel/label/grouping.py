"""Which near-duplicate frames may share one review task: only frames that show one item.

A review task is labelled once, so a group must hold one item. Embedding distance alone groups a
hand with product A and a hand with product B (or an empty cart) on the same background, so two
frames join only when no cue that needs no ground truth tells them apart:

- the same clip;
- the same device insertion (ClipSidecarV2 `insertions`, first_frame..last_frame): frames of two
  insertions, or one inside and one outside every insertion, never share a task. V1 clips carry no
  spans: their frames must lie within `max_span_s` of each other instead (an insertion's approach,
  hold and drop);
- the barcode labeler's reads agree (two confident reads of different SKUs are two items);
- the weight labeler's candidate lists intersect (disjoint lists are two different weight steps).

Reads pre-labels and sidecars only, never ground truth (the layering test covers flywheel.label).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Span = tuple[int, int]  # clip frame indices, first..last inclusive
OUTSIDE = -1  # the insertion key of a frame no insertion of its V2 clip covers


@dataclass(frozen=True)
class GroupingConfig:
    max_distance: float = 0.01  # cosine distance of the embeddings (LanceDB), a necessary condition
    max_span_s: float = 2.0  # V1 clips (no insertion spans): frames of a group lie this close in time
    barcode_min_confidence: float = 0.5  # a barcode vote at least this sure is evidence of the item
    max_members: int = 24  # one task never shows more frames than this


@dataclass(frozen=True)
class ItemCue:
    """What a frame tells about its item, without ground truth."""

    clip_id: str | None
    t_s: float | None
    insertion: int | None  # index into the clip's insertion spans, OUTSIDE, or None (V1: unknown)
    barcode: str | None  # the barcode labeler's confident SKU
    weight: frozenset[str] | None  # the weight labeler's candidate SKUs


def insertion_of(frame_index: int | None, spans: Sequence[Span] | None) -> int | None:
    if spans is None or frame_index is None:
        return None
    return next((i for i, (a, b) in enumerate(spans) if a <= frame_index <= b), OUTSIDE)


def cue_of(row: Mapping[str, Any], spans: Mapping[str, Sequence[Span] | None],
           config: GroupingConfig) -> ItemCue:
    """`row`: a pre-label row (clip_id, frame_index, t_s, votes); `spans`: clip id -> its insertion
    spans (None for a V1 clip or one whose sidecar is unreadable)."""
    from flywheel.label.tables import vote_candidates

    votes = {v.get("labeler"): v for v in row.get("votes") or []}
    bc = votes.get("barcode") or {}
    barcode = bc.get("label") if (bc.get("confidence") or 0.0) >= config.barcode_min_confidence else None
    weight = vote_candidates(row.get("votes"), "weight")
    clip = row.get("clip_id")
    t = row.get("t_s")
    return ItemCue(clip_id=clip, t_s=None if t is None else float(t),
                   insertion=insertion_of(row.get("frame_index"), spans.get(clip) if clip else None),
                   barcode=barcode,
                   weight=frozenset(weight[-1]) if weight else None)


def same_item(a: ItemCue, b: ItemCue, config: GroupingConfig) -> bool:
    """Whether nothing but ground truth could tell the two frames' items apart."""
    if a.clip_id is None or a.clip_id != b.clip_id:
        return False
    known = a.insertion is not None and b.insertion is not None
    if known and a.insertion != b.insertion:
        return False
    if (not known or a.insertion == OUTSIDE) and (
            a.t_s is None or b.t_s is None or abs(a.t_s - b.t_s) > config.max_span_s):
        return False  # no span covers both (V1, a frame outside every insertion): time must vouch
    if a.barcode and b.barcode and a.barcode != b.barcode:
        return False
    return not (a.weight is not None and b.weight is not None and not a.weight & b.weight)


def insertion_spans(sidecars: Mapping[str, Any]) -> dict[str, list[Span] | None]:
    """clip id -> its insertion spans (ClipSidecarV2); None for V1 sidecars (no spans written)."""
    return {clip: ([(i.first_frame, i.last_frame) for i in sc.insertions]
                   if getattr(sc, "schema_version", 1) >= 2 else None)
            for clip, sc in sidecars.items()}
