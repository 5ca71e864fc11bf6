"""Which review tasks also ask the person for a box around the item.

The production model crops every frame at its detector's best box. A fleet label without a box
reaches the crop classifier only where the parent's detector already boxes the item
(`flywheel.learner.two_stage.box_unboxed`), and never teaches the detector: the lab-trained
bootstrap detector finds 1-38 % of store items, so without drawn boxes the fleet's model cannot
learn to see in the stores. A person already looking at a task's leader can draw the box where the
device saw none (`TimeModel.extreme_click_s`, 7 s); only there, and at most `max_boxes` a run (queue
order), so the cost stays a count that does not grow with the fleet. Off by default
(`RoutingConfig.max_boxes` 0): tens of store boxes without as many store empties taught the
refreshed detector to box empty carts (README, "Drawn boxes and store empties").
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edge_agent.lake import Lake
from flywheel.label.routing import Task

log = logging.getLogger(__name__)


def request_boxes(tasks: list[Task], box_confidence: Callable[[str], float | None], threshold: float,
                  max_boxes: int, box_s: float) -> list[Task]:
    """`tasks` with `draw_box` set on those (queue order, at most `max_boxes`) whose leader the
    production detector boxes below `threshold` (None: no detector, nothing to ask); their
    `est_seconds` grow by `box_s` (a box is drawn only where there is an item: an upper bound)."""
    asked: set[str] = set()
    for t in sorted(tasks, key=lambda t: t.rank):
        if len(asked) >= max_boxes:
            break
        conf = box_confidence(t.frame_ids[0])
        if conf is not None and conf < threshold:
            asked.add(t.task_id)
    return [dataclasses.replace(t, draw_box=True, est_seconds=t.est_seconds + box_s)
            if t.task_id in asked else t for t in tasks]


def box_confidence(lake: Lake, model_id: str | None, jpegs: Mapping[str, bytes], work: Path
                   ) -> tuple[dict[str, float], float] | None:
    """(frame id -> model `model_id`'s detector's best-box confidence on that JPEG, the device's box
    threshold), as the device computes them (`edge_agent.model.DeviceModel`); None when the model
    is not a two-stage one (nothing to box) or there is none. A JPEG that does not decode gets no
    confidence (logged): its task asks for no box, and the rest of the day's queue goes on."""
    from edge_agent.model import DeviceModel
    from flywheel.depot.frames import from_image_bytes
    from flywheel.learner import registry

    if not model_id or not jpegs:
        return None
    slot = registry.write_slot(lake, model_id, Path(work) / "box-requests" / model_id)
    model = DeviceModel(slot, threads=2)
    if model.detector is None:
        return None
    conf = {}
    for fid, data in jpegs.items():
        try:
            image = from_image_bytes(data)
        except (OSError, ValueError) as e:  # PIL: UnidentifiedImageError is an OSError
            log.warning("box request: frame %s does not decode (%s); no box asked there", fid, e)
            continue
        conf[fid] = float(model.locate(image)[2])
    return conf, float(model.detector.min_confidence)


def ask_for_boxes(lake: Lake, routing: Any, frames: Any, max_boxes: int, box_s: float) -> int:
    """Set `draw_box` on the routing's tasks (in place) whose leader the production detector misses,
    within `max_boxes` and what the routing left of its budget; `frames`: Depot frames (pyarrow)
    holding the leaders. Returns how many were asked."""
    import tempfile

    from flywheel.learner.registry import production_model_id

    if box_s > 0:  # within what the routing left of its budget
        max_boxes = min(max_boxes, int((routing.budget_s - routing.planned_s) // box_s))
    if max_boxes <= 0 or not routing.tasks or frames is None:
        return 0
    leaders = {t.frame_ids[0] for t in routing.tasks}
    ids = frames.column("frame_id").to_pylist()
    jpeg = frames.column("image_jpeg")
    with tempfile.TemporaryDirectory(prefix="flywheel-boxes-") as work:  # the model's slot
        seen = box_confidence(lake, production_model_id(lake),
                              {f: jpeg[i].as_py() for i, f in enumerate(ids) if f in leaders}, Path(work))
    if seen is None:
        return 0
    conf, threshold = seen
    before = sum(t.est_seconds for t in routing.tasks)
    routing.tasks = request_boxes(routing.tasks, conf.get, threshold, max_boxes, box_s)
    routing.planned_s += sum(t.est_seconds for t in routing.tasks) - before
    return sum(t.draw_box for t in routing.tasks)
