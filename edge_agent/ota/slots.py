"""Model slots for OTA: stage a release into the inactive slot, and check a model on its golden
inputs (ONNX Runtime outputs against what the cloud recorded at export)."""

from __future__ import annotations

import hashlib
import io
import shutil
from collections.abc import Collection
from pathlib import Path

import numpy as np

from edge_agent.contract.errors import ContractError
from edge_agent.contract.schemas import parse_device_model
from edge_agent.model import resolve_slot

SLOT_FILES = ("model.onnx", "model.json")  # what goes into a slot; golden.npz stays in staging
# a two-stage model's detector golden inputs, in golden.npz beside the classifier's
DETECTOR_GOLDEN = ("detector_inputs", "detector_expected")


class OtaError(Exception):
    """One update step failed; the message says which and why."""


class ValidationFailed(OtaError):
    """The release's model failed golden-input validation: it is refused for good."""


def inactive_slot(model_dir: Path) -> str:
    return "b" if resolve_slot(model_dir).name == "a" else "a"


def slot_files(staging: Path, signed: Collection[str]) -> tuple[str, ...]:
    """The files the staged model.json needs in its slot: model.onnx, model.json and, for a
    two-stage model, its detector, which must be one of the release's `signed` files (TUF verified
    each on download) with the sha256 model.json names. Anything else is refused for good."""
    try:
        meta = parse_device_model((staging / "model.json").read_bytes())
    except (OSError, ContractError) as e:
        raise ValidationFailed(f"model.json of the release unreadable: {e}") from None
    if meta.detector is None:
        return SLOT_FILES
    name = meta.detector.file
    if name not in signed:
        raise ValidationFailed(f"model.json names detector {name}, which is not a signed file "
                               f"of the release ({sorted(signed)})")
    digest = hashlib.sha256((staging / name).read_bytes()).hexdigest()
    if digest != meta.detector.sha256:
        raise ValidationFailed(f"detector {name}: sha256 {digest[:12]} is not the "
                               f"{meta.detector.sha256[:12]} model.json names")
    return (*SLOT_FILES, name)


def stage_into(model_dir: Path, slot: str, staging: Path, signed: Collection[str] = SLOT_FILES
               ) -> None:
    """Replace slots/<slot> with the staged files (never the active slot: callers pick the other).
    `signed`: the release's file names (see slot_files)."""
    names = slot_files(staging, signed)
    d = Path(model_dir) / "slots" / slot
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    for name in names:
        tmp = d / f".{name}.tmp"
        shutil.copyfile(staging / name, tmp)
        tmp.replace(d / name)


def golden_check(model_path: Path, golden_path: Path, where: str, atol: float,
                 min_top1: float) -> None:
    """ONNX Runtime on the golden inputs; raise ValidationFailed unless every output is within
    `atol` of the recorded one and at least `min_top1` of the argmaxes agree. A two-stage model
    (its model.json beside `model_path` names a detector) has its detector checked too."""
    try:
        golden = dict(np.load(io.BytesIO(golden_path.read_bytes())))
        inputs, expected = golden["inputs"], golden["expected"]
    except Exception as e:
        raise OtaError(f"golden inputs {golden_path.name} unreadable: {e}") from None
    _check_outputs(model_path, inputs, expected, where, atol, min_top1)
    meta_path = model_path.parent / "model.json"
    try:
        meta = parse_device_model(meta_path.read_bytes()) if meta_path.exists() else None
    except ContractError as e:
        raise ValidationFailed(f"golden validation: {meta_path} invalid: {e}") from None
    if meta is not None and meta.detector is not None:
        if not all(k in golden for k in DETECTOR_GOLDEN):
            raise ValidationFailed(f"golden validation: {golden_path.name} has no detector golden "
                                   f"inputs ({', '.join(DETECTOR_GOLDEN)}) for a two-stage model")
        # boxes, not class scores: the argmax over its rows means nothing, max |diff| is the check,
        # on boxes as fractions of the input side (edge_agent.crop.golden_scale)
        _check_outputs(model_path.parent / meta.detector.file, golden[DETECTOR_GOLDEN[0]],
                       golden[DETECTOR_GOLDEN[1]], f"{where} (detector)", atol, 0.0,
                       side=meta.detector.input_size[-1])


def _check_outputs(model_path: Path, inputs: np.ndarray, expected: np.ndarray, where: str,
                   atol: float, min_top1: float, side: int | None = None) -> None:
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        got = np.concatenate([sess.run(None, {name: x[None]})[0] for x in inputs])
    except Exception as e:
        raise ValidationFailed(f"golden validation: model in {where} does not run: {e}") from None
    if got.shape != expected.shape:
        raise ValidationFailed(f"golden validation: output shape {got.shape} != expected "
                               f"{expected.shape}")
    if side is not None:  # a detector
        from edge_agent.crop import golden_scale

        got, expected = golden_scale(got, side), golden_scale(expected, side)
    diff = float(np.max(np.abs(got - expected))) if got.size else 0.0
    agree = float(np.mean(got.argmax(1) == expected.argmax(1))) if len(got) else 1.0
    if diff > atol or agree < min_top1:
        raise ValidationFailed(f"golden validation failed in {where}: max |diff| {diff:.3g} "
                               f"(limit {atol:g}), top-1 agreement {agree:.3f} (min {min_top1:g})")
