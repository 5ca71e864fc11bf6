"""The device model: ONNX Runtime on every frame, loaded from the agent's active model slot.

Model directory layout (the OTA client swaps `active` atomically):

    <model_dir>/slots/a/model.onnx   + model.json  (DeviceModelV1 in edge_agent/contract/schemas.py)
    <model_dir>/slots/b/...
    <model_dir>/active               a text file naming the slot ("a"), or a symlink to slots/a

A slot may also be given directly (a directory holding model.onnx). Labels are SKUs; the label
"" or "none" means "no product" (prediction None).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.contract.errors import ContractError
from edge_agent.contract.schemas import parse_device_model
from edge_agent.whitebalance import white_balance

NONE_LABELS = ("", "none", "empty", "__none__")
EMBEDDING_OUTPUT = "embedding"  # the optional second ONNX output (see flywheel/federated/onnx_head.py)


class ModelError(RuntimeError):
    """The model slot is missing, inconsistent or fails to load."""


@dataclass(frozen=True)
class Prediction:
    label: str | None  # top-1 SKU, None for "no product"
    confidence: float  # softmax probability of the top-1 class
    latency_ms: float
    probs: np.ndarray | None = None  # softmax over `labels` (the insertion vote uses all of it)
    labels: Sequence[str] | None = None  # the model's labels, in output order
    # the model's penultimate features (a second ONNX output named EMBEDDING_OUTPUT, when the
    # model has one): what a federated head is trained on; never leaves the device
    embedding: np.ndarray | None = None

    def distribution(self) -> dict[str, float]:
        """label -> probability; only the top-1 when the model gave no vector."""
        if self.probs is not None and self.labels is not None:
            return dict(zip(self.labels, self.probs.tolist(), strict=True))
        return {self.label if self.label is not None else "none": self.confidence}


def resolve_slot(model_dir: str | Path) -> Path:
    """The directory of the active slot."""
    root = Path(model_dir)
    if (root / "model.onnx").is_file():
        return root
    active = root / "active"
    if active.is_symlink() or active.is_dir():
        slot = active.resolve()
    elif active.is_file():
        name = active.read_text().strip()
        if name not in {p.name for p in (root / "slots").glob("*")}:
            raise ModelError(f"{active}: names slot {name!r}, which does not exist under {root / 'slots'}")
        slot = root / "slots" / name
    else:
        raise ModelError(f"{root}: no model.onnx and no 'active' slot pointer")
    if not (slot / "model.onnx").is_file():
        raise ModelError(f"{slot}: active slot has no model.onnx")
    return slot


def activate_slot(model_dir: str | Path, slot: str) -> Path:
    """Point `active` at slots/<slot> atomically (temp file + rename): a reader sees the old slot or
    the new one, never a half-written pointer. Returns the slot directory."""
    root = Path(model_dir)
    target = root / "slots" / slot
    if not (target / "model.onnx").is_file():
        raise ModelError(f"{target}: no model.onnx to activate")
    tmp = root / ".active.tmp"
    tmp.write_text(slot)
    tmp.replace(root / "active")
    return target


def active_stamp(model_dir: str | Path) -> tuple[str, int]:
    """Cheap change detector for hot model swaps: (slot path, model mtime)."""
    slot = resolve_slot(model_dir)
    return str(slot), (slot / "model.onnx").stat().st_mtime_ns


class DeviceModel:
    """One ONNX classifier; `predict(rgb_uint8_hwc)` -> Prediction."""

    def __init__(self, model_dir: str | Path, *, threads: int = 1) -> None:
        import onnxruntime as ort

        self.slot = resolve_slot(model_dir)
        meta_path = self.slot / "model.json"
        try:
            meta = parse_device_model(meta_path.read_bytes())
        except FileNotFoundError:
            raise ModelError(f"{meta_path}: missing (model_version, labels)") from None
        except ContractError as e:
            raise ModelError(f"{meta_path}: {e}") from None
        self.version = meta.model_version
        self.labels: list[str] = list(meta.labels)
        opts = ort.SessionOptions()
        # The inference loop is the device's primary job: a fixed, small thread budget keeps its
        # latency predictable and leaves cores to the encoder.
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        try:
            self._sess = ort.InferenceSession(str(self.slot / "model.onnx"), opts,
                                              providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types for corrupt files
            raise ModelError(f"{self.slot / 'model.onnx'}: cannot load: {e}") from None
        inp = self._sess.get_inputs()[0]
        self._input = inp.name
        size = meta.input_size or [inp.shape[2], inp.shape[3]]
        self.input_hw = (int(size[0]), int(size[1]))
        self._mean = np.asarray(meta.mean, np.float32).reshape(1, 3, 1, 1)
        self._std = np.asarray(meta.std, np.float32).reshape(1, 3, 1, 1)
        self.white_balance = meta.white_balance
        # the ONNX metadata_props (e.g. the backbone digest federated samples are keyed on)
        self.metadata: dict[str, str] = dict(self._sess.get_modelmeta().custom_metadata_map)
        outputs = self._sess.get_outputs()
        self.has_embedding = any(o.name == EMBEDDING_OUTPUT for o in outputs)
        self._outputs = [outputs[0].name] + ([EMBEDDING_OUTPUT] if self.has_embedding else [])
        out_dim = outputs[0].shape[-1]
        if isinstance(out_dim, int) and out_dim != len(self.labels):
            raise ModelError(f"{self.slot}: model has {out_dim} outputs but {len(self.labels)} labels")

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        h, w = self.input_hw
        H, W = image.shape[:2]
        ys = (np.arange(h) * H // h).astype(np.intp)  # nearest-neighbour resize: no extra deps
        xs = (np.arange(w) * W // w).astype(np.intp)
        small = white_balance(np.ascontiguousarray(image[ys][:, xs]), self.white_balance)
        x = small.astype(np.float32) * (1.0 / 255.0)
        x = x.transpose(2, 0, 1)[None]
        return np.ascontiguousarray((x - self._mean) / self._std)

    def predict(self, image: np.ndarray) -> Prediction:
        start = time.perf_counter()
        outs = self._sess.run(self._outputs, {self._input: self.preprocess(image)})
        logits = outs[0][0]
        z = logits.astype(np.float64) - float(np.max(logits))
        p = np.exp(z)
        p /= p.sum()
        k = int(np.argmax(p))
        label = self.labels[k]
        return Prediction(None if label.lower() in NONE_LABELS else label, float(p[k]),
                          (time.perf_counter() - start) * 1000.0, p, self.labels,
                          outs[1][0] if self.has_embedding else None)
