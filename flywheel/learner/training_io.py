"""What a training run hands on, shared by the whole-frame run (train.py) and the two-stage run
(two_stage.py): the result, checkpoints carrying their config, the curves, the class-order check
and the device card (DeviceModelV1) derived from the model card."""

from __future__ import annotations

import csv
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from edge_agent.contract.schemas import DetectorV1, DeviceModelV1
from flywheel.learner.documents import ModelCardV1
from flywheel.learner.errors import DatasetError, RegistryError

N_GOLDEN_REAL = 16  # validation frames in the golden set (plus synthetic probes)


@dataclass
class TrainResult:
    model_id: str
    dataset_version: str
    classes: list[str]
    curves: list[dict]  # one row per epoch: losses and validation metrics
    seconds_train: float  # wall time of model.train (materialisation excluded)
    seconds_total: float
    n_train: int
    n_val: int
    card: ModelCardV1
    onnx_validation: dict
    where: str = ""  # "ray:<node>/<pid>" or "in-process"


def read_curves(results_csv: Path) -> list[dict]:
    if not results_csv.exists():
        return []
    with results_csv.open() as f:
        return [{k.strip(): float(v) for k, v in row.items() if k and v not in (None, "")}
                for row in csv.DictReader(f)]


def save_checkpoint(best: Path, dest: Path, meta: dict) -> None:
    """Add config + dataset version to the ultralytics checkpoint; temp file + os.replace."""
    import torch

    ckpt = torch.load(best, map_location="cpu", weights_only=False)
    ckpt["flywheel"] = meta
    tmp = dest.with_suffix(".tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, dest)


def check_class_order(names: dict[int, str] | list[str], task: str, classes: list[str]) -> None:
    """The trained model's class order must be the card's, or every label it predicts is wrong."""
    from flywheel.learner.materialize import trained_names

    got = [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)
    want = trained_names(task, classes)
    if got != want:
        raise DatasetError(f"trained class order {got[:8]} differs from the dataset's {want[:8]} "
                           f"(classes {classes[:8]}); the model card would mislabel every prediction")


def device_model(card: ModelCardV1) -> DeviceModelV1:
    """The edge agent's slot `model.json` (edge_agent/model.py): what the OTA path ships beside
    model.onnx so the device labels, sizes and normalises exactly as evaluation did."""
    pre = card.preprocessing
    return DeviceModelV1(model_version=card.model_id, labels=card.classes,
                         input_size=[pre["resize"]["height"], pre["resize"]["width"]],
                         mean=pre["mean"], std=pre["std"], output=pre["output"],
                         white_balance=pre.get("white_balance", "none"), detector=detector_spec(card))


def where() -> str:
    ray = sys.modules.get("ray")  # never import ray just to ask: in-process runs do not need it
    if ray is not None and ray.is_initialized():
        ctx = ray.get_runtime_context()
        if ctx.worker.mode == ray.WORKER_MODE:
            return f"ray:{ctx.get_node_id()[:8]}/pid{os.getpid()}"
    return "in-process"


def detector_spec(card: ModelCardV1) -> DetectorV1 | None:
    """A two-stage card's detector for the device card (None for a one-stage card): the file and
    its sha256 from the card's files, the crop and P(empty) settings from its preprocessing
    (two_stage.preprocessing_doc)."""
    two = card.preprocessing.get("two_stage")
    if not two:
        return None
    det = two["detector"]
    entry = card.files.get(det["file"])
    if entry is None:
        raise RegistryError(f"model {card.model_id}: two-stage card without its {det['file']} "
                            "(a model derived from it must carry its detector)")
    return DetectorV1(file=det["file"], sha256=entry.sha256, input_size=det["input_size"],
                      crop_margin=two["crop"]["margin"], min_confidence=two["min_confidence"],
                      empty_rule=two["empty_rule"])
