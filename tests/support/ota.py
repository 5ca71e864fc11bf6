"""Test and benchmark support for releases and OTA: real release files (ONNX classifier, device card,
golden inputs computed with ONNX Runtime), a lake whose reads break at chosen byte offsets, and a
simulated device (model slots + the real OtaUpdater)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.lake import Lake, LakeError

LABELS = ["none", "4006381333931", "5012345678900"]


def onnx_classifier(seed: int, pad_bytes: int = 0) -> bytes:
    """The fleet's bootstrap classifier (real ONNX); `pad_bytes` adds an unused initializer so a
    download spans many range reads."""
    import onnx
    from onnx import numpy_helper

    from flywheel.fleet.bootstrap import build_classifier_onnx

    data = build_classifier_onnx(LABELS, seed=seed)
    if not pad_bytes:
        return data
    model = onnx.load_from_string(data)
    pad = np.random.default_rng(seed).integers(0, 255, pad_bytes, dtype=np.uint8)
    model.graph.initializer.append(numpy_helper.from_array(pad, "pad"))
    return model.SerializeToString()


def golden_for(onnx_bytes: bytes, n: int = 6, seed: int = 0) -> bytes:
    """Golden inputs (NCHW float32) and the outputs ONNX Runtime gives for them (.npz bytes)."""
    import onnxruntime as ort

    from flywheel.fleet.bootstrap import INPUT_HW

    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(seed).standard_normal((n, 3, *INPUT_HW)).astype(np.float32)
    name = sess.get_inputs()[0].name
    expected = np.concatenate([sess.run(None, {name: xi[None]})[0] for xi in x])
    buf = io.BytesIO()
    np.savez(buf, inputs=x, expected=expected)
    return buf.getvalue()


def release_files(seed: int, version: str, *, pad_bytes: int = 0,
                  golden_seed_model: int | None = None) -> dict[str, bytes]:
    """model.onnx, model.json (device card) and golden.npz for a model. `golden_seed_model` makes
    the golden outputs come from ANOTHER model (a release that must fail validation)."""
    from flywheel.fleet.bootstrap import INPUT_HW, MEAN, STD

    onnx_bytes = onnx_classifier(seed, pad_bytes)
    golden_src = onnx_bytes if golden_seed_model is None else onnx_classifier(golden_seed_model)
    card = {"model_version": version, "labels": LABELS, "input_size": list(INPUT_HW),
            "mean": [MEAN] * 3, "std": [STD] * 3}
    return {"model.onnx": onnx_bytes, "model.json": json.dumps(card).encode(),
            "golden.npz": golden_for(golden_src)}


class InterruptingLake:
    """Passes everything to a real lake, but a read of a key containing `match` that crosses one of
    `cuts` (absolute byte offsets) fails there, once per cut: a dropped connection. The bytes that
    came over before the drop are lost to the client and counted in `wasted_bytes`."""

    def __init__(self, inner: Lake, cuts: list[int], match: str = "/targets/") -> None:
        self.inner, self.match = inner, match
        self.pending = sorted(cuts)
        self.interruptions = 0
        self.wasted_bytes = 0

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        if self.match in key and self.pending and start is not None and end is not None:
            cut = self.pending[0]
            if start <= cut < end:
                self.pending.pop(0)
                self.interruptions += 1
                self.wasted_bytes += len(self.inner.get(key, start, cut))
                raise LakeError(f"{key}: connection dropped at byte {cut}")
        return self.inner.get(key, start, end)


@dataclass
class SimDevice:
    """A device: model slots (factory model in slot a) and its OTA state directory."""

    device_id: str
    root: Path

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def state_dir(self) -> Path:
        return self.root / "ota"

    def install_factory(self, seed: int = 100, version: str = "factory-0") -> None:
        from flywheel.fleet.bootstrap import install_model_slot

        install_model_slot(self.model_dir, LABELS, version=version, seed=seed)

    def updater(self, lake, channel: str, trusted_root: bytes, fetcher=None, **cfg):
        from edge_agent.ota.updater import OtaConfig, OtaUpdater

        config = OtaConfig(device_id=self.device_id, channel=channel, model_dir=self.model_dir,
                           state_dir=self.state_dir, trusted_root=trusted_root,
                           **{"probation_frames": 5, **cfg})
        return OtaUpdater(lake, config, fetcher=fetcher)

    def running_version(self) -> str:
        """Load the active slot as the agent would and return its model version."""
        from edge_agent.model import DeviceModel

        model = DeviceModel(self.model_dir)
        model.predict(np.zeros((48, 64, 3), np.uint8))  # it really runs
        return model.version


def unreachable_lake() -> Lake:
    """An S3 lake whose endpoint refuses connections (nothing listens on the port)."""
    import socket

    from edge_agent.lake import S3Options

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return Lake("s3://nowhere/lake", s3=S3Options(endpoint=f"http://127.0.0.1:{port}",
                                                  access_key_id="x", secret_access_key="y",
                                                  max_retries=0, retry_timeout_s=1.0,
                                                  connect_timeout_s=1.0))


def raise_disk_full(after_bytes: int):
    """A fetcher write hook: the disk fills once `after_bytes` have been written."""
    import errno
    import os

    written = {"n": 0}

    def hook(path: Path, n: int) -> None:
        if written["n"] + n > after_bytes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        written["n"] += n

    return hook


def register_model(lake, model_id: str, files: dict[str, bytes], *, gate_passed: bool | None = None,
                   production_id: str | None = None) -> None:
    """A registry entry as the Learner writes it (typed card with sha256s, device.json from the
    release files' model.json, golden inputs) and, with `gate_passed`, its gate decision."""
    from edge_agent.contract.schemas import DeviceModelV1
    from flywheel.learner import registry
    from flywheel.learner.documents import GateDecisionV1
    from tests.support.registry import register_model as register_typed

    card = json.loads(files["model.json"])
    device = DeviceModelV1(model_version=model_id, labels=card["labels"],
                           input_size=card["input_size"], mean=card["mean"], std=card["std"])
    register_typed(lake, model_id, {"model.onnx": files["model.onnx"],
                                    "golden.npz": files["golden.npz"]},
                   classes=card["labels"], device=device)
    if gate_passed is not None:
        registry.write_gate(lake, GateDecisionV1(
            candidate_id=model_id, production_id=production_id, passed=gate_passed,
            reasons=[] if gate_passed else ["target metric did not improve"], rules=[]))


DETECTOR_HW = (32, 32)


def onnx_detector(seed: int, hw: tuple[int, int] = DETECTOR_HW) -> bytes:
    """A tiny stand-in for an ultralytics detect head (real ONNX): images [1, 3, h, w] -> [1, 5,
    anchors], rows cx, cy, w, h in input pixels and a score in (0, 1), from a seeded 1x1 conv over
    8x8-pooled pixels: what `edge_agent.crop.best_box` decodes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    h, w = hw
    rng = np.random.default_rng(seed)
    conv = rng.standard_normal((5, 3, 1, 1)).astype(np.float32) * 2.0
    scale = np.array([w, h, w / 2, h / 2, 1.0], np.float32).reshape(1, 5, 1)
    nodes = [helper.make_node("AveragePool", ["images"], ["p"], kernel_shape=[8, 8], strides=[8, 8]),
             helper.make_node("Conv", ["p", "k"], ["c"]),
             helper.make_node("Reshape", ["c", "shape"], ["r"]),
             helper.make_node("Sigmoid", ["r"], ["s"]),
             helper.make_node("Mul", ["s", "scale"], ["output0"])]
    graph = helper.make_graph(
        nodes, "tiny_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 5, (h // 8) * (w // 8)])],
        [numpy_helper.from_array(conv, "k"), numpy_helper.from_array(np.array([1, 5, -1], np.int64), "shape"),
         numpy_helper.from_array(scale, "scale")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def two_stage_release_files(seed: int, version: str, *, detector_seed: int | None = None,
                            detector_sha256: str | None = None) -> dict[str, bytes]:
    """`release_files` plus a detector: model.json names detector.onnx and its sha256 (or
    `detector_sha256`: a card that vouches for other bytes), golden.npz holds both golden sets."""
    import hashlib

    import onnxruntime as ort

    files = release_files(seed, version)
    det = onnx_detector(seed if detector_seed is None else detector_seed)
    card = json.loads(files["model.json"])
    card["detector"] = {"file": "detector.onnx", "sha256": detector_sha256 or hashlib.sha256(det).hexdigest(),
                        "input_size": list(DETECTOR_HW)}
    golden = dict(np.load(io.BytesIO(files["golden.npz"])))
    sess = ort.InferenceSession(det, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(seed).random((4, 3, *DETECTOR_HW), dtype=np.float32)
    golden["detector_inputs"] = x
    golden["detector_expected"] = np.concatenate([sess.run(None, {"images": xi[None]})[0] for xi in x])
    buf = io.BytesIO()
    np.savez(buf, **golden)
    return {**files, "model.json": json.dumps(card).encode(), "golden.npz": buf.getvalue(),
            "detector.onnx": det}
