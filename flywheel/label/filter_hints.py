"""What the empty-background filter tells the item detector, at no human cost.

A fleet label names the product, not where it is, so before this only drawn boxes could teach the
detector the stores (the lab-trained bootstrap boxes 9-38 % of store items and 3-53 % of empty
carts). The filter already knows both: where the foreground is on a kept frame (item and hand), and
which idle frames show nothing at all (clean empties). A labelled item frame without a drawn box
gets the foreground box; clean empties join as empty frames, as many as the day's boxed item
frames (`EMPTIES_PER_BOX`): store boxes without store empties taught a refreshed detector to box
empty carts (README, "Drawn boxes and store empties"). Measured offline, the bootstrap detector
refreshed on one simulated store day's 611 foreground boxes and 1,473 clean empties boxes 58-73 %
of frozen store items (IoU >= 0.5 with the true box: 27-46 %, the hand is in the box) and no
store empty (README, "Boxes from the empty filter").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from edge_agent.lake import Lake
from flywheel.label.tables import read_candidates

EMPTIES_PER_BOX = 1.0  # clean empties per boxed item frame of the day (about 1:1 measured)


@dataclass
class FilterHints:
    boxes: dict[str, list[float]] = field(default_factory=dict)  # frame id -> [x1, y1, x2, y2] in 0..1
    empties: list[str] = field(default_factory=list)  # clean store empties, frame ids


def read_hints(lake: Lake, day: str) -> FilterHints:
    """The day's foreground boxes and clean empties from its candidates table; none from a table
    written before the filter recorded them (or none at all)."""
    table = read_candidates(lake, day)
    if "fg_box" not in table.column_names or "clean_empty" not in table.column_names:
        return FilterHints()
    ids = table.column("frame_id").to_pylist()
    boxes = {f: [float(v) for v in b] for f, b in zip(ids, table.column("fg_box").to_pylist(), strict=True)
             if b is not None}
    empties = [f for f, e in zip(ids, table.column("clean_empty").to_pylist(), strict=True) if e]
    return FilterHints(boxes, empties)


def pixel_box(box: list[float], width: int, height: int) -> list[float]:
    x1, y1, x2, y2 = box
    return [x1 * width, y1 * height, x2 * width, y2 * height]


def pick_empties(empties: list[str], n: int) -> list[str]:
    """`n` of the clean empties, spread over the day by a stable hash (the same on every re-run)."""
    return sorted(empties, key=lambda f: hashlib.sha256(f.encode()).hexdigest())[:max(0, n)]
