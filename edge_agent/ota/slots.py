"""Model slots for OTA: stage a release into the inactive slot, and check a model on its golden
inputs (ONNX Runtime outputs against what the cloud recorded at export)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np

from edge_agent.model import resolve_slot

SLOT_FILES = ("model.onnx", "model.json")  # what goes into a slot; golden.npz stays in staging


class OtaError(Exception):
    """One update step failed; the message says which and why."""


class ValidationFailed(OtaError):
    """The release's model failed golden-input validation: it is refused for good."""


def inactive_slot(model_dir: Path) -> str:
    return "b" if resolve_slot(model_dir).name == "a" else "a"


def stage_into(model_dir: Path, slot: str, staging: Path) -> None:
    """Replace slots/<slot> with the staged files (never the active slot: callers pick the other)."""
    d = Path(model_dir) / "slots" / slot
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    for name in SLOT_FILES:
        tmp = d / f".{name}.tmp"
        shutil.copyfile(staging / name, tmp)
        tmp.replace(d / name)


def golden_check(model_path: Path, golden_path: Path, where: str, atol: float,
                 min_top1: float) -> None:
    """ONNX Runtime on the golden inputs; raise ValidationFailed unless every output is within
    `atol` of the recorded one and at least `min_top1` of the argmaxes agree."""
    import onnxruntime as ort

    try:
        golden = np.load(io.BytesIO(golden_path.read_bytes()))
        inputs, expected = golden["inputs"], golden["expected"]
    except Exception as e:
        raise OtaError(f"golden inputs {golden_path.name} unreadable: {e}") from None
    try:
        sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        got = np.concatenate([sess.run(None, {name: x[None]})[0] for x in inputs])
    except Exception as e:
        raise ValidationFailed(f"golden validation: model in {where} does not run: {e}") from None
    if got.shape != expected.shape:
        raise ValidationFailed(f"golden validation: output shape {got.shape} != expected "
                               f"{expected.shape}")
    diff = float(np.max(np.abs(got - expected))) if got.size else 0.0
    agree = float(np.mean(got.argmax(1) == expected.argmax(1))) if len(got) else 1.0
    if diff > atol or agree < min_top1:
        raise ValidationFailed(f"golden validation failed in {where}: max |diff| {diff:.3g} "
                               f"(limit {atol:g}), top-1 agreement {agree:.3f} (min {min_top1:g})")
