"""Fine-tune a turn's candidate from its parent (the production model) instead of from scratch.

A turn adds a few hundred fleet labels, some of SKUs the parent never saw. Three short epochs from
random weights teach a 22-way classifier nothing (train loss stays near chance); from the parent's
weights they refine a model that already works. Ultralytics loads `pretrained=<checkpoint>` into a
yaml-built model by matching tensor shapes, so a head with another class count would be silently
left random. `prepare` therefore writes a checkpoint already shaped for this dataset: every tensor
of the parent, the class rows of the head copied by class name into the dataset's class order, the
rows of new classes initialised small. Ultralytics then transfers all of it.

`oversample_rare` (classify) repeats the training frames of rare classes (repeat-factor sampling,
Gupta et al., LVIS 2019): a SKU first seen in the fleet may have 3 frames beside 150 of another.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edge_agent.lake import Lake
from flywheel.learner.config import EMPTY_CLASS, TrainConfig

NEW_ROW_STD = 0.01  # new classes' head weights: small, so they start near the mean prior


@dataclass(frozen=True)
class WarmStart:
    """How a training run was initialised; `as_card()` goes into the model card's training."""

    mode: str  # "parent" (fine-tuned from `parent`) or "scratch"
    parent: str | None = None
    weights: Path | None = None  # the checkpoint shaped for this dataset (ultralytics `pretrained=`)
    reason: str = ""  # why scratch, when the config asked for the parent
    copied_classes: int = 0  # head rows taken from the parent by class name
    new_classes: list[str] = field(default_factory=list)  # classes the parent never had
    transferred: str = ""  # "<tensors copied>/<tensors>" of the whole model

    def pretrained(self) -> str | bool:
        return str(self.weights) if self.weights else False

    def warmup_epochs(self, cfg: TrainConfig) -> float:
        """Fine-tunes start from trained weights: ramping the rate up from zero would spend most of
        a short run (ultralytics warms up for min(warmup_epochs, epochs - 1) epochs)."""
        return cfg.finetune_warmup_epochs if self.mode == "parent" else cfg.warmup_epochs

    def epochs(self, cfg: TrainConfig) -> int:
        """A fine-tune starts where the parent converged: min(epochs, finetune_epochs)."""
        return min(cfg.epochs, cfg.finetune_epochs) if self.mode == "parent" else cfg.epochs

    def as_card(self) -> dict:
        out = asdict(self)
        out.pop("weights")
        return out


def head_names(task: str, classes: list[str]) -> list[str]:
    """Output index -> class of a model trained on `classes` (the model card's `classes`)."""
    return list(classes) if task == "classify" else [c for c in classes if c != EMPTY_CLASS]


def prepare(lake: Lake, parent_id: str | None, cfg: TrainConfig, classes: list[str],
            work: Path) -> WarmStart:
    """The run's initialisation: the parent's weights reshaped for `classes`, or scratch (and why)."""
    from flywheel.learner import registry

    if cfg.init == "scratch":
        return WarmStart("scratch", reason="config init=scratch")
    if not parent_id:
        return WarmStart("scratch", reason="no production model yet")
    card = registry.read_card(lake, parent_id)
    if card.task != cfg.task or card.architecture != cfg.architecture:
        return WarmStart("scratch", parent_id, reason=f"parent is {card.task} {card.architecture}, "
                                                      f"this run {cfg.task} {cfg.architecture}")
    src = registry.fetch_file(lake, parent_id, "weights.pt", work)
    out = work / "init.pt"
    names = head_names(cfg.task, classes)
    copied, new, transferred = adapt_checkpoint(src, card.classes, names, cfg, out)
    src.unlink()
    return WarmStart("parent", parent_id, out, copied_classes=copied, new_classes=new,
                     transferred=transferred)


@dataclass(frozen=True)
class DetectorStart:
    """Where a two-stage run's detector comes from; `as_card()` goes into the card's training."""

    mode: str  # "reused" (the parent's files, byte for byte), "fine-tuned" (from them) or "scratch"
    parent: str | None = None
    weights: Path | None = None  # the parent's detector.pt (reused / fine-tuned from)
    onnx: Path | None = None  # the parent's detector.onnx (reused)
    new_boxes: int = 0  # boxed item frames of this dataset that the parent's dataset lacks
    reason: str = ""

    def as_card(self) -> dict:
        out = asdict(self)
        out.pop("weights")
        out.pop("onnx")
        return out


def detector_dataset(lake: Lake, card) -> str:  # noqa: ANN001 - registry.ModelCard
    """The dataset version `card`'s detector was trained on: a reused detector's is its parent's
    (and so on), so boxes drawn a few a turn add up to a refresh instead of each turn counting
    only its own."""
    from flywheel.learner import registry

    seen = {card.model_id}
    while True:
        init = (card.training.get("detector") or {}).get("init") or {}
        parent = init.get("parent")
        if init.get("mode") != "reused" or not parent or parent in seen:
            return card.lineage.dataset_version
        seen.add(parent)
        card = registry.read_card(lake, parent)


def prepare_detector(lake: Lake, parent_id: str | None, cfg: TrainConfig, frame_ids: list[str],
                     work: Path) -> DetectorStart:
    """The two-stage run's detector: the parent's (a two-stage production model) reused when none
    of `frame_ids` (this dataset's boxed item frames) is new to the dataset the parent's detector
    was trained on (`detector_dataset`), or fewer than `roi.det_refresh_min_new_boxes`, fine-tuned
    `roi.det_refresh_epochs` from it when that many are, else trained from scratch (and why)."""
    from flywheel.learner import registry
    from flywheel.learner.datasets import load_dataset_version, read_members

    roi = cfg.roi
    assert roi is not None
    if cfg.init == "scratch":
        return DetectorStart("scratch", reason="config init=scratch")
    if not parent_id:
        return DetectorStart("scratch", reason="no production model yet")
    card = registry.read_card(lake, parent_id)
    det = card.preprocessing.get("two_stage", {}).get("detector", {})
    if registry.DETECTOR_WEIGHTS not in card.files or det.get("input_size") != [roi.det_imgsz] * 2 or \
            not card.architecture.startswith(f"{roi.det_model_yaml} -> "):
        return DetectorStart("scratch", parent_id, reason=f"parent is {card.architecture} "
                                                          f"{det.get('input_size') or 'one-stage'}")
    parent_ds = load_dataset_version(lake, detector_dataset(lake, card))
    import polars as pl

    parent_members = read_members(lake, parent_ds, None, with_images=False)
    seen = set(parent_members.filter(pl.col("item_box").is_not_null())["frame_id"].to_list())
    new = sum(1 for f in frame_ids if f not in seen)
    work.mkdir(parents=True, exist_ok=True)
    weights = registry.fetch_file(lake, parent_id, registry.DETECTOR_WEIGHTS, work)
    if new and roi.det_refresh_epochs > 0 and new >= roi.det_refresh_min_new_boxes:
        return DetectorStart("fine-tuned", parent_id, weights, new_boxes=new)
    reason = ("no new boxes" if not new else "det_refresh_epochs=0" if roi.det_refresh_epochs <= 0
              else f"{new} new boxes < det_refresh_min_new_boxes={roi.det_refresh_min_new_boxes}")
    return DetectorStart("reused", parent_id, weights,
                         registry.fetch_file(lake, parent_id, registry.DETECTOR_FILE, work), new,
                         reason=reason)


def adapt_checkpoint(src: Path, parent_names: list[str], names: list[str], cfg: TrainConfig,
                     out: Path) -> tuple[int, list[str], str]:
    """Build the yaml model for `names`, load every same-shape tensor of `src`, copy the head's class
    rows (any tensor whose first axis is the parent's class count) by class name; write `out` as an
    ultralytics checkpoint. Returns (rows copied, new classes, "copied/total" tensors)."""
    import torch
    from ultralytics.nn.tasks import ClassificationModel, DetectionModel

    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    parent = (ckpt.get("ema") or ckpt["model"]).float()
    build = ClassificationModel if cfg.task == "classify" else DetectionModel
    model = build(cfg.model_yaml, nc=len(names), verbose=False)
    old = parent.state_dict()
    state = model.state_dict()
    rows = {n: i for i, n in enumerate(parent_names)}
    pairs = [(j, rows[n]) for j, n in enumerate(names) if n in rows]
    new = [n for n in names if n not in rows]
    gen = torch.Generator().manual_seed(cfg.seed)
    heads = set(_class_keys(state, old, len(parent_names), len(names)))
    copied = 0
    with torch.no_grad():
        for k, dst in state.items():
            if k in heads:
                _copy_rows(dst, old[k], pairs, gen)
            elif k in old and old[k].shape == dst.shape:
                dst.copy_(old[k])
            else:
                continue  # e.g. a detect branch whose width follows the class count: stays fresh
            copied += 1
    model.names = dict(enumerate(names))
    tmp = out.with_suffix(".tmp")
    torch.save({"model": model, "ema": None, "train_args": {}, "epoch": -1}, tmp)
    os.replace(tmp, out)
    return len(pairs), new, f"{copied}/{len(state)}"


def _class_keys(state: dict, old: dict, n_old: int, n_new: int) -> list[str]:
    """Head tensors indexed by class: the classifier's last layer (classify: `linear`, detect: the
    last conv of each `cv3` branch)."""
    return [k for k in state if k in old and (".linear." in k or (".cv3." in k and k.split(".")[-2]
                                                                   == "2"))
            and old[k].shape[0] == n_old and state[k].shape[0] == n_new]


def _copy_rows(dst, src, pairs: list[tuple[int, int]], gen) -> None:
    """dst[j] = src[i] for each (j, i); rows of new classes: small random weights, the mean bias."""
    import torch

    if dst.dim() == 1:  # bias: a new class starts at the average prior of the known ones
        dst.fill_(float(src.mean()))
    else:
        dst.copy_(torch.randn(dst.shape, generator=gen) * NEW_ROW_STD)
    for j, i in pairs:
        dst[j] = src[i]


def oversample_rare(train_dir: Path, floor: float) -> dict[str, int]:
    """Hard-link extra copies of rare classes' training images so each class has about
    r_c = max(1, sqrt(floor * n_max / n_c)) times its frames (a class at `floor` of the largest one
    is left as it is). Returns {class folder: copies added}; floor 0 adds none."""
    if floor <= 0:
        return {}
    files = {d.name: sorted(p for p in d.iterdir() if p.is_file())
             for d in sorted(train_dir.iterdir()) if d.is_dir()}
    n_max = max((len(f) for f in files.values()), default=0)
    added: dict[str, int] = {}
    for name, imgs in files.items():
        if not imgs:
            continue
        r = max(1.0, math.sqrt(floor * n_max / len(imgs)))
        extra = round((r - 1) * len(imgs))
        for k in range(extra):
            src = imgs[k % len(imgs)]
            os.link(src, src.with_name(f"{src.stem}~r{k // len(imgs) + 1}{src.suffix}"))
        if extra:
            added[name] = extra
    return added
