"""The device model: ONNX Runtime on every frame, loaded from the agent's active model slot.

Model directory layout (the OTA client swaps `active` atomically):

    <model_dir>/slots/a/model.onnx   + model.json  (DeviceModelV1 in edge_agent/contract/schemas.py)
    <model_dir>/slots/b/...
    <model_dir>/active               a text file naming the slot ("a"), or a symlink to slots/a

A slot may also be given directly (a directory holding model.onnx). Labels are SKUs; the label
"" or "none" means "no product" (prediction None).

Two-stage slots (`model.json` has a `detector`, DetectorV1) also hold the detector's ONNX file:
per frame the detector's best box is cropped square (edge_agent/crop.py) and model.onnx
classifies the crop; P(empty) comes from the box confidence (`crop.combine`). The Learner's
evaluation runs this same class on its candidates, so the gate sees what the device will do.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.contract.errors import ContractError
from edge_agent.contract.schemas import DetectorV1, parse_device_model
from edge_agent.crop import balanced_crop, best_box, combine, letterbox
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


def _session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # The inference loop is the device's primary job: a fixed, small thread budget keeps its
    # latency predictable and leaves cores to the encoder.
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own types for corrupt files
        raise ModelError(f"{path}: cannot load: {e}") from None


def detector_file(slot: Path, spec: DetectorV1) -> Path:
    """The slot's detector, checked against the sha256 its (signed) model.json names."""
    path = slot / spec.file
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise ModelError(f"{slot}: model.json names detector {spec.file}, which the slot lacks"
                         ) from None
    if digest != spec.sha256:
        raise ModelError(f"{path}: sha256 {digest[:12]} is not the {spec.sha256[:12]} model.json "
                         "names; refusing an unverified detector")
    return path


class DeviceModel:
    """One ONNX classifier (or a detector + crop classifier); `predict(rgb_uint8_hwc)` -> Prediction."""

    def __init__(self, model_dir: str | Path, *, threads: int = 1) -> None:
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
        self._sess = _session(self.slot / "model.onnx", threads)
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
        self.detector = meta.detector  # None: one-stage, the whole frame is classified
        if self.detector is not None:
            self._empty = next((i for i, lab in enumerate(self.labels) if lab.lower() in NONE_LABELS),
                               None)
            if self._empty is None:
                raise ModelError(f"{self.slot}: a two-stage model needs a no-product label "
                                 f"({NONE_LABELS}) for P(empty)")
            if self.input_hw[0] != self.input_hw[1]:
                raise ModelError(f"{self.slot}: a crop classifier takes square crops, its input is "
                                 f"{self.input_hw}")
            self._det = _session(detector_file(self.slot, self.detector), threads)
            self._det_input = self._det.get_inputs()[0].name
            self._det_hw = (int(self.detector.input_size[0]), int(self.detector.input_size[1]))

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """The classifier's input: the whole frame, or (two-stage) the detector's crop."""
        return self.locate(image)[0]

    def locate(self, image: np.ndarray) -> tuple[np.ndarray, list[float] | None, float]:
        """(classifier input, the detector's best box or None for one-stage, its confidence)."""
        box, conf = None, 1.0
        if self.detector is None:
            h, w = self.input_hw
            H, W = image.shape[:2]
            ys = (np.arange(h) * H // h).astype(np.intp)  # nearest-neighbour resize: no extra deps
            xs = (np.arange(w) * W // w).astype(np.intp)
            small = white_balance(np.ascontiguousarray(image[ys][:, xs]), self.white_balance)
        else:
            out = self._det.run(None, {self._det_input: letterbox(image, self._det_hw)})[0]
            box, conf = best_box(out, image.shape[:2], self._det_hw)
            # a square crop, whatever the box: the classifier always runs (steady latency, and
            # an embedding on every frame for the federated head)
            small = balanced_crop(image, box, self.input_hw[0], self.white_balance,
                                  margin=self.detector.crop_margin)
        x = small.astype(np.float32) * (1.0 / 255.0)
        x = x.transpose(2, 0, 1)[None]
        return np.ascontiguousarray((x - self._mean) / self._std), box, conf

    def predict(self, image: np.ndarray) -> Prediction:
        start = time.perf_counter()
        x, _, conf = self.locate(image)
        outs = self._sess.run(self._outputs, {self._input: x})
        logits = outs[0][0]
        z = logits.astype(np.float64) - float(np.max(logits))
        p = np.exp(z)
        p /= p.sum()
        if self.detector is not None:
            p = combine(conf, p, self._empty, self.detector.empty_rule, self.detector.min_confidence)
        k = int(np.argmax(p))
        label = self.labels[k]
        return Prediction(None if label.lower() in NONE_LABELS else label, float(p[k]),
                          (time.perf_counter() - start) * 1000.0, p, self.labels,
                          outs[1][0] if self.has_embedding else None)
