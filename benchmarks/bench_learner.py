"""Learner: training speed, Ray overhead, and the bootstrap model's manual-vs-production gap.

- seconds per epoch per 1,000 training images (YOLOv8n-cls, imgsz 64, CPU, 2 threads);
- the same training as a Ray task (LocalRay, 2 CPUs) vs in-process, alternated A-B-B-A so drift of
  this shared machine hits both sides: target ratio <= 1.15 (Ray wall time incl. scheduling and
  the worker's own data loading, ray.init excluded);
- the bootstrap model trained on the manual collection, evaluated on the frozen manual and
  production test sets: the gap the flywheel must close (both numbers recorded).
Run: `python -m benchmarks.bench_learner [out_dir]` (writes out_dir/learner.json).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 1.15


def main(out_dir: Path, epochs: int = 20, rounds: int = 2) -> dict:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from edge_agent.lake import Lake
    from flywheel.learner import reference_sets, registry
    from flywheel.learner.config import DatasetSpec, GateRules, TrainConfig
    from flywheel.learner.pipeline import SimSources, build_dataset, evaluate_candidate, import_from_simulator
    from flywheel.learner.train import TrainRequest, run_training, train_on_ray

    with tempfile.TemporaryDirectory(prefix="bench-learner-") as tmp:
        lake = Lake.at_path(tmp)
        t = time.perf_counter()
        import_from_simulator(lake, SimSources())
        seconds_import = time.perf_counter() - t
        ds, _ = build_dataset(lake, DatasetSpec())
        cfg = TrainConfig(epochs=epochs)
        catalog = tuple(sorted(reference_sets.catalog_skus(lake)))

        def request(tag: str) -> TrainRequest:
            return TrainRequest(lake.uri, None, ds.version, cfg, f"cls-bench-{tag}", catalog=catalog,
                                rules=GateRules())

        import ray

        t = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        seconds_ray_init = time.perf_counter() - t
        runs: dict[str, list[dict]] = {"in_process": [], "ray": []}
        try:
            order = ["in_process", "ray", "ray", "in_process"] * max(1, rounds // 2)
            for i, mode in enumerate(order):
                t = time.perf_counter()
                res = (run_training if mode == "in_process" else train_on_ray)(request(f"{mode}-{i}"))
                runs[mode].append({"wall_s": time.perf_counter() - t, "train_s": res.seconds_train,
                                   "where": res.where, "model_id": res.model_id,
                                   "n_train": res.n_train,
                                   "val_top1": (res.curves[-1] if res.curves else {}).get(
                                       "metrics/accuracy_top1")})
        finally:
            ray.shutdown()

        n_train = runs["in_process"][0]["n_train"]
        inproc_wall = statistics.median(r["wall_s"] for r in runs["in_process"])
        ray_wall = statistics.median(r["wall_s"] for r in runs["ray"])
        inproc_train = statistics.median(r["train_s"] for r in runs["in_process"])
        # the bootstrap model: the last in-process one, evaluated like any candidate (no production)
        bootstrap = runs["in_process"][-1]["model_id"]
        ev = evaluate_candidate(lake, bootstrap)
        metrics = ev.candidate.metrics
        per_set = {k: v["top1"] for k, v in ev.candidate.sets.items()}
        card = registry.read_card(lake, bootstrap)

    result = {
        "model": cfg.model_yaml, "imgsz": cfg.imgsz, "epochs": epochs, "batch": cfg.batch,
        "dataset_version": ds.version, "n_train": n_train, "n_val": card.training["n_val"],
        "seconds_per_epoch_per_1000_images": inproc_train / epochs / n_train * 1000.0,
        "in_process_wall_s": [round(r["wall_s"], 2) for r in runs["in_process"]],
        "ray_wall_s": [round(r["wall_s"], 2) for r in runs["ray"]],
        "ray_vs_in_process_ratio": ray_wall / inproc_wall,
        "ray_vs_in_process_train_only_ratio": (statistics.median(r["train_s"] for r in runs["ray"])
                                               / inproc_train),
        "target_ratio": TARGET_RATIO,
        "ratio_within_target": ray_wall / inproc_wall <= TARGET_RATIO,
        "ray_ran_on": runs["ray"][0]["where"],
        "seconds_ray_init": seconds_ray_init, "seconds_sim_import": seconds_import,
        "bootstrap_model": bootstrap,
        "bootstrap_manual_top1": metrics.get("manual_top1"),
        "bootstrap_production_top1": metrics.get("production_top1"),
        "bootstrap_gap_manual_minus_production": metrics.get("manual_minus_production_top1"),
        "bootstrap_top1_per_set": per_set,
        "bootstrap_production_ece": metrics.get("production_ece"),
        "onnx_latency_p95_ms": metrics.get("latency_p95_ms"),
        "val_top1": [r["val_top1"] for r in runs["in_process"] + runs["ray"]],
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "learner.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "var" / "bench"
    print(json.dumps(main(out), indent=1))
