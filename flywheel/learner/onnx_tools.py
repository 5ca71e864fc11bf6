"""ONNX export and its validation: ONNX Runtime on golden inputs against the torch model.

A candidate whose ONNX output disagrees with torch would behave differently on the device than in
every number the gate looked at, so the comparison is part of the registry entry and of the gate.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def torch_outputs(weights: Path, inputs: np.ndarray) -> np.ndarray:
    """Run the ultralytics checkpoint's torch model (eval mode) on NCHW float32 inputs."""
    import torch
    from ultralytics import YOLO

    net = YOLO(str(weights)).model.float().eval()
    with torch.inference_mode():
        out = net(torch.from_numpy(np.ascontiguousarray(inputs)))
    if isinstance(out, list | tuple):
        # classify eval returns (probs, logits): compare logits, which is what the ONNX outputs;
        # detect returns (y, feats): compare y
        out = out[1] if _is_classify(net) else out[0]
    return out.detach().cpu().numpy().astype(np.float32)


def onnx_session(path: Path | str | bytes):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # like a device core; also keeps tests off each other's cores
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path if isinstance(path, bytes) else str(path), sess_options=opts,
                                providers=["CPUExecutionProvider"])


def onnx_outputs(session, inputs: np.ndarray, batch: int = 64) -> np.ndarray:
    name = session.get_inputs()[0].name
    outs = [session.run(None, {name: inputs[i:i + batch]})[0] for i in range(0, len(inputs), batch)]
    return np.concatenate(outs).astype(np.float32) if outs else np.zeros((0,), np.float32)


def _is_classify(net) -> bool:
    return type(net).__name__ == "ClassificationModel"


def export_onnx(weights: Path, imgsz: int, task: str = "classify") -> Path:
    """ultralytics export, dynamic batch, opset 17, simplified; returns the .onnx path.

    Classify models are exported with logits as the output (the final Softmax removed): the edge
    agent applies softmax itself, and softmax of probabilities would flatten every confidence.
    They also get a second output, `embedding` (the head's input; onnx_head.expose_embedding):
    additive, the logits stay the first output, and federated devices train their head on it."""
    from ultralytics import YOLO

    path = Path(YOLO(str(weights)).export(format="onnx", imgsz=imgsz, dynamic=True, simplify=True,
                                          opset=17, device="cpu", verbose=False))
    if task == "classify":
        from flywheel.learner.onnx_head import expose_embedding_file

        strip_final_softmax(path)
        expose_embedding_file(path)
    return path


def strip_final_softmax(path: Path) -> None:
    """Rewire the graph output to the input of its final Softmax node (in place, atomically)."""
    import os

    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    out_name = graph.output[0].name
    softmax = [n for n in graph.node if n.op_type == "Softmax" and out_name in n.output]
    if not softmax:
        return
    logits = softmax[0].input[0]
    graph.node.remove(softmax[0])
    for node in graph.node:  # the producer of the logits now writes the graph output
        for i, name in enumerate(node.output):
            if name == logits:
                node.output[i] = out_name
        for i, name in enumerate(node.input):
            if name == logits:
                node.input[i] = out_name
    onnx.checker.check_model(model)
    tmp = path.with_suffix(".tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, path)


def compare_outputs(torch_out: np.ndarray, onnx_out: np.ndarray, max_abs_diff: float,
                    min_top1_agreement: float, task: str = "classify") -> dict:
    """The numbers the gate reads: max |diff| and (classify) argmax agreement. The limit is
    `max_abs_diff` on outputs within [-1, 1] (probabilities, box fractions) and scales with the
    largest |output| beyond that: float32 rounding grows with magnitude, and a head that outputs
    logits of ~10 (the federated head) failed a fixed 1e-3 by 0.00123 with the same top-1."""
    if torch_out.shape != onnx_out.shape:
        return {"passed": False, "reason": f"shape {onnx_out.shape} != torch {torch_out.shape}",
                "max_abs_diff": float("inf"), "top1_agreement": 0.0, "n": int(len(torch_out))}
    diff = float(np.max(np.abs(torch_out - onnx_out))) if torch_out.size else 0.0
    scale = max(1.0, float(np.max(np.abs(torch_out)))) if torch_out.size else 1.0
    limit = max_abs_diff * scale
    agree = (float(np.mean(torch_out.argmax(1) == onnx_out.argmax(1)))
             if task == "classify" and len(torch_out) else 1.0)
    passed = diff <= limit and agree >= min_top1_agreement
    reason = "" if passed else (f"max |onnx - torch| = {diff:.3g} (limit {limit:.3g}), "
                                f"top-1 agreement {agree:.3f} (min {min_top1_agreement:g})")
    return {"passed": passed, "reason": reason, "max_abs_diff": diff, "top1_agreement": agree,
            "n": int(len(torch_out)), "max_abs_diff_limit": limit, "output_scale": scale,
            "min_top1_agreement": min_top1_agreement}


def golden_inputs(real: np.ndarray, imgsz: int, n_synthetic: int = 4, seed: int = 0) -> np.ndarray:
    """Real frames plus fixed synthetic ones (black, white, seeded noise) that probe the ranges."""
    rng = np.random.default_rng(seed)
    synth = [np.zeros((3, imgsz, imgsz), np.float32), np.ones((3, imgsz, imgsz), np.float32)]
    synth += [rng.random((3, imgsz, imgsz), dtype=np.float32) for _ in range(max(0, n_synthetic - 2))]
    parts = [real.astype(np.float32)] if len(real) else []
    return np.concatenate(parts + [np.stack(synth)]) if synth else real


def latency_ms(session, imgsz: int, runs: int = 30, rounds: int = 3, warmup: int = 5) -> dict:
    """ONNX Runtime CPU latency at batch 1 (one thread, like a device core). The p95 is the best of
    `rounds` rounds: on a shared machine one round can be hit by a neighbour's burst, which says
    nothing about the model."""
    x = np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)
    name = session.get_inputs()[0].name
    for _ in range(warmup):
        session.run(None, {name: x})
    per_round = []
    for _ in range(rounds):
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            session.run(None, {name: x})
            times.append((time.perf_counter() - t) * 1000.0)
        per_round.append(times)
    best = min(per_round, key=lambda ts: float(np.percentile(ts, 95)))
    return {"p50_ms": float(np.percentile(best, 50)), "p95_ms": float(np.percentile(best, 95)),
            "mean_ms": float(np.mean(best)), "runs": runs, "rounds": rounds, "batch": 1, "threads": 1}
