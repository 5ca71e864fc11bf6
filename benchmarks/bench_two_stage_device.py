"""What the device runs per frame, two-stage vs whole frame: `edge_agent.model.DeviceModel.predict`
(numpy letterbox, the detector, best box, square crop + white balance, the crop classifier, P(empty))
at batch 1 on one thread, against the one-stage whole-frame classifier (96 px, white balanced)
measured in the same run, on the same simulator frames (320x240).

Latency does not depend on the weights: the models are built from their yaml (yolov8n detect at
`--det-imgsz`, yolov8n-cls at `--crop` and 96 px) and exported with the Learner's own export
(`onnx_tools.export_onnx`: logits + embedding outputs). Reported: p50/p95 of the whole predict, the
parts (detector session, numpy pre/post-processing, classifier session) and the ratio to the
baseline. Target (issue 16): everything the device runs per frame <= 10 ms p95.
Run: `python -m benchmarks.bench_two_stage_device [out_dir]` (writes out_dir/two_stage_device.json).
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DET_IMGSZ = 128
CROP = 64
WHOLE = 96
FRAMES = 40
RUNS = 3  # passes over the frames; p95 over all
N_CLASSES = 22  # the bootstrap's classes (21 SKUs + empty)


def _export(yaml: str, task: str, imgsz: int, tmp: Path) -> Path:
    """An untrained model from its yaml, saved as an ultralytics checkpoint and exported by the
    Learner's own export (latency does not depend on the weights)."""
    import torch
    from ultralytics.nn.tasks import ClassificationModel, DetectionModel

    from flywheel.learner.onnx_tools import export_onnx

    nc = 1 if task == "detect" else N_CLASSES
    net = (DetectionModel(yaml, nc=nc, verbose=False) if task == "detect"
           else ClassificationModel(yaml, nc=nc, verbose=False))
    net.names = {0: "item"} if task == "detect" else {i: f"{i:04d}" for i in range(nc)}
    ckpt = tmp / f"{task}-{imgsz}.pt"
    torch.save({"model": net, "train_args": {"imgsz": imgsz, "task": task}}, ckpt)
    return export_onnx(ckpt, imgsz, task)


def _slot(d: Path, cls_onnx: Path, labels: list[str], size: int, det_onnx: Path | None) -> Path:
    from edge_agent.contract.schemas import DeviceModelV1, dump_document

    d.mkdir(parents=True)
    (d / "model.onnx").write_bytes(cls_onnx.read_bytes())
    det = None
    if det_onnx is not None:
        data = det_onnx.read_bytes()
        (d / "detector.onnx").write_bytes(data)
        det = {"file": "detector.onnx", "sha256": hashlib.sha256(data).hexdigest(),
               "input_size": [DET_IMGSZ, DET_IMGSZ]}
    doc = DeviceModelV1(model_version="bench", labels=labels, input_size=[size, size],
                        white_balance="gray_world", detector=det)
    (d / "model.json").write_bytes(dump_document(doc))
    return d


def _time(fn, frames: list[np.ndarray]) -> list[float]:
    for f in frames[:5]:
        fn(f)
    out = []
    for _ in range(RUNS):
        for f in frames:
            t = time.perf_counter()
            fn(f)
            out.append((time.perf_counter() - t) * 1000.0)
    return out


def _pct(ts: list[float]) -> dict:
    return {k: round(float(np.percentile(ts, q)), 3) for k, q in (("p50_ms", 50), ("p95_ms", 95))}


def main(out_dir: Path | str = Path("var/bench")) -> dict:
    from edge_agent.crop import balanced_crop, best_box, letterbox
    from edge_agent.model import DeviceModel
    from flywheel.learner import yolo_env
    from flywheel.sim import default_world
    from flywheel.sim.export import build_production_test_set

    yolo_env.configure()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    frames = [f.device.image for f in build_production_test_set("A", 7, FRAMES, world=default_world(7))]
    labels = ["empty", *[f"{i:013d}" for i in range(1, N_CLASSES)]]
    with tempfile.TemporaryDirectory(prefix="bench-two-stage-") as tmp_dir:
        tmp = Path(tmp_dir)
        det = _export("yolov8n.yaml", "detect", DET_IMGSZ, tmp)
        crop_cls = _export("yolov8n-cls.yaml", "classify", CROP, tmp)
        whole_cls = _export("yolov8n-cls.yaml", "classify", WHOLE, tmp)
        two = DeviceModel(_slot(tmp / "two", crop_cls, labels, CROP, det))
        one = DeviceModel(_slot(tmp / "one", whole_cls, labels, WHOLE, None))
        load = os.getloadavg()
        base = _time(one.predict, frames)
        full = _time(two.predict, frames)
        # the parts of the two-stage predict
        det_in = two._det.get_inputs()[0].name
        cls_in = two._sess.get_inputs()[0].name
        x_det = letterbox(frames[0], (DET_IMGSZ, DET_IMGSZ))
        out = two._det.run(None, {det_in: x_det})[0]
        x_cls = two.preprocess(frames[0])
        parts = {
            "detector_session": _pct(_time(lambda f: two._det.run(None, {det_in: x_det}), frames)),
            "classifier_session": _pct(_time(lambda f: two._sess.run(None, {cls_in: x_cls}), frames)),
            "numpy_letterbox": _pct(_time(lambda f: letterbox(f, (DET_IMGSZ, DET_IMGSZ)), frames)),
            "numpy_box_crop_balance": _pct(_time(
                lambda f: balanced_crop(f, best_box(out, f.shape[:2], (DET_IMGSZ, DET_IMGSZ))[0], CROP,
                                        "gray_world"), frames)),
        }
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "settings": {"det_imgsz": DET_IMGSZ, "crop": CROP, "whole_frame": WHOLE, "frames": FRAMES,
                     "runs": RUNS, "threads": 1, "frame": list(frames[0].shape)},
        "two_stage": _pct(full), "one_stage_whole_frame": _pct(base),
        "ratio_p95_two_vs_one": round(float(np.percentile(full, 95) / np.percentile(base, 95)), 3),
        "parts": parts, "target_p95_ms": 10.0,
        "meets_target": bool(np.percentile(full, 95) <= 10.0),
        "load_before": load, "load_after": os.getloadavg(),
        "cpu_s": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 2),
    }
    (out_dir / "two_stage_device.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("var/bench")), indent=1))
