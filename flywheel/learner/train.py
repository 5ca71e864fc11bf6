"""One training run: dataset version in, registry entry out. Runs in-process or as a Ray task.

The Ray task gets only a picklable request (lake URI + options without secrets, dataset version,
config; S3 credentials travel as the worker's environment) and does all heavy work where it runs:
it reads and verifies the dataset from the lake, materialises it on its local disk, trains, writes
the checkpoint atomically with its config and dataset version, exports ONNX and validates it on
golden inputs, and registers the model. On KubeRay that keeps the data path lake -> worker, never
through the Dagster process.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from edge_agent.lake import Lake, S3Options
from flywheel.learner import registry
from flywheel.learner.config import EMPTY_CLASS, GateRules, TrainConfig
from flywheel.learner.datasets import load_dataset_version, read_members
from flywheel.learner.documents import ModelCardV1
from flywheel.learner.errors import DatasetError
from flywheel.learner.training_io import N_GOLDEN_REAL, TrainResult, check_class_order, device_model
from flywheel.learner.training_io import read_curves as _read_curves
from flywheel.learner.training_io import save_checkpoint as _save_checkpoint
from flywheel.learner.training_io import where as _where

__all__ = ["N_GOLDEN_REAL", "TrainRequest", "TrainResult", "check_class_order", "device_model",
           "run_training", "train_on_ray"]


@dataclass(frozen=True)
class TrainRequest:
    lake_uri: str
    lake_s3: S3Options | None  # None for file:// lakes
    dataset_version: str
    config: TrainConfig
    model_id: str
    parent_model_id: str | None = None  # the production model at the time (lineage)
    code_version: str = "unknown"
    catalog: tuple[str, ...] | None = None  # known SKUs; labels outside it fail before training
    rules: GateRules = field(default_factory=GateRules)  # ONNX agreement limits


def run_training(req: TrainRequest) -> TrainResult:
    """Train, export, validate and register one model. Raises DatasetError before training."""
    from flywheel.learner import yolo_env

    t0 = time.perf_counter()
    yolo_env.configure()
    cfg = req.config
    lake = Lake(req.lake_uri, s3=req.lake_s3)
    ds = load_dataset_version(lake, req.dataset_version)
    if ds.manifest["spec"]["task"] != cfg.task:
        raise DatasetError(f"dataset {ds.version} is for task {ds.manifest['spec']['task']!r}, "
                           f"the training config for {cfg.task!r}")
    catalog = set(req.catalog) if req.catalog is not None else None
    members = read_members(lake, ds, catalog)  # verifies files + re-validates: before training
    classes = ds.classes
    if cfg.roi is not None:  # detector + crop classifier: flywheel/learner/two_stage.py
        from flywheel.learner.two_stage import train_two_stage

        return train_two_stage(req, lake, ds, members, t0)
    from ultralytics import YOLO

    from flywheel.learner import onnx_tools, warm_start
    from flywheel.learner.materialize import materialize_classify, materialize_detect
    from flywheel.learner.preprocess import png_batch, preprocessing_doc

    with tempfile.TemporaryDirectory(prefix="flywheel-train-") as tmp_dir:
        tmp = Path(tmp_dir)
        init = warm_start.prepare(lake, req.parent_model_id, cfg, classes, tmp / "parent")
        if cfg.task == "classify":
            data = str(materialize_classify(members, classes, tmp / "data", cfg.imgsz,
                                                 cfg.white_balance))
            repeated = warm_start.oversample_rare(tmp / "data" / "train", cfg.balance)
            extra = {"scale": cfg.scale, "auto_augment": cfg.auto_augment}
        else:
            data = str(materialize_detect(members, classes, tmp / "data"))
            extra = {"mosaic": 0.0}  # 4-image mosaics of tiny frames cost time and teach little
            repeated = {}
        model = YOLO(cfg.model_yaml, task=cfg.task)
        yolo_env.use_cpus(model, cfg.num_cpus, cfg.workers)
        yolo_env.stop_at(model, None if cfg.time_budget_s is None
                         else time.time() - (time.perf_counter() - t0) + cfg.time_budget_s)
        t_train = time.perf_counter()
        with yolo_env.tolerate_val_class_gaps():
            model.train(data=data, epochs=init.epochs(cfg), imgsz=cfg.imgsz, batch=cfg.batch,
                        workers=cfg.workers, device="cpu", amp=yolo_env.amp_arg(cfg.precision),
                        seed=cfg.seed,
                        deterministic=True, lr0=cfg.lr0, optimizer=cfg.optimizer,
                        patience=cfg.patience, fliplr=cfg.fliplr,
                        warmup_epochs=init.warmup_epochs(cfg), nbs=cfg.nbs or cfg.batch,
                        hsv_v=cfg.hsv_v, hsv_s=cfg.hsv_s, pretrained=init.pretrained(), plots=False,
                        verbose=False, project=str(tmp / "runs"), name="run", exist_ok=True, **extra)
        seconds_train = time.perf_counter() - t_train
        run_dir = tmp / "runs" / "run"
        best = run_dir / "weights" / "best.pt"
        if not best.exists():
            best = run_dir / "weights" / "last.pt"
        check_class_order(YOLO(str(best)).names, cfg.task, classes)
        curves = _read_curves(run_dir / "results.csv")
        meta = {"model_id": req.model_id, "dataset_version": ds.version, "config": cfg.as_dict(),
                "classes": classes, "code_version": req.code_version,
                "parent_model": req.parent_model_id}
        ckpt = tmp / "weights.pt"
        _save_checkpoint(best, ckpt, meta)

        # golden inputs: validation frames + synthetic probes, torch vs ONNX Runtime
        val = members.filter(pl.col("split") == "val").head(N_GOLDEN_REAL)
        real = (png_batch(val["image_png"].to_list(), cfg.imgsz, cfg.white_balance) if cfg.task == "classify"
                else np.zeros((0, 3, cfg.imgsz, cfg.imgsz), np.float32))
        golden = onnx_tools.golden_inputs(real, cfg.imgsz)
        onnx_path = onnx_tools.export_onnx(ckpt, cfg.imgsz, cfg.task)
        expected = onnx_tools.torch_outputs(ckpt, golden)
        got = onnx_tools.onnx_outputs(onnx_tools.onnx_session(onnx_path), golden)
        validation = onnx_tools.compare_outputs(expected, got, req.rules.onnx_max_abs_diff,
                                                req.rules.onnx_min_top1_agreement, cfg.task)
        np.savez_compressed(tmp / "golden.npz", inputs=golden, expected=expected)

        files = {name: registry.put_file(lake, req.model_id, name, path) for name, path in
                 (("weights.pt", ckpt), ("model.onnx", onnx_path), ("golden.npz", tmp / "golden.npz"))}
    n_train = members.filter(pl.col("split") == "train").height
    n_val = members.height - n_train
    card = ModelCardV1(
        model_id=req.model_id,
        task=cfg.task,
        architecture=cfg.model_yaml,
        classes=classes if cfg.task == "classify" else [c for c in classes if c != EMPTY_CLASS],
        empty_class=EMPTY_CLASS if EMPTY_CLASS in classes else None,
        imgsz=cfg.imgsz,
        preprocessing=preprocessing_doc(cfg.imgsz, cfg.task, cfg.white_balance),
        files=files,
        lineage={"dataset_version": ds.version, "code_version": req.code_version,
                 "parent_model": req.parent_model_id, "train_config": cfg.as_dict(),
                 "dataset_sources": ds.manifest.get("sources", [])},
        training={"epochs": len(curves), "seconds_train": seconds_train, "n_train": n_train,
                  "n_val": n_val, "final": curves[-1] if curves else {},
                  "init": init.as_card(), "repeated_frames": sum(repeated.values()),
                  "precision": yolo_env.resolve_precision(cfg.precision)},
        onnx_validation=validation,
        created_at=datetime.now(UTC),
    )
    registry.write_device_model(lake, device_model(card))
    registry.write_training_curves(lake, req.model_id, curves)
    registry.write_card(lake, card)  # the card goes last
    return TrainResult(req.model_id, ds.version, classes, curves, seconds_train,
                       time.perf_counter() - t0, n_train, n_val, card, validation, _where())


def split_secrets(req: TrainRequest) -> tuple[TrainRequest, dict[str, str]]:
    """The request without S3 credentials, and the credentials as the AWS_* variables S3Options
    falls back to. Task arguments are pickled into Ray's object store and task records; the
    worker's environment is where a secret belongs."""
    s3 = req.lake_s3
    if s3 is None or not (s3.access_key_id or s3.secret_access_key):
        return req, {}
    env = {k: v for k, v in (("AWS_ACCESS_KEY_ID", s3.access_key_id),
                             ("AWS_SECRET_ACCESS_KEY", s3.secret_access_key)) if v}
    return replace(req, lake_s3=replace(s3, access_key_id=None, secret_access_key=None)), env


def ray_task(req: TrainRequest, resources: dict[str, float] | None = None) -> tuple[TrainRequest, dict]:
    """The request a Ray task may carry and its `ray.remote` options: `config.num_cpus` CPUs, no
    retries (a failed training must surface, not silently run twice), and any S3 credentials as the
    worker's environment (a task runtime_env, merged with the job's) instead of inside the pickled
    request. With none in the request the worker uses its own (e.g. a KubeRay pod's secret env).
    `resources` (custom Ray resources) pins the task to the nodes that carry them."""
    req, env = split_secrets(req)
    options: dict = {"num_cpus": req.config.num_cpus, "max_retries": 0}
    if resources:
        options["resources"] = dict(resources)
    if env:
        options["runtime_env"] = {"env_vars": env}
    return req, options


def train_on_ray(req: TrainRequest, resources: dict[str, float] | None = None) -> TrainResult:
    """Run `run_training` as a Ray task (see `ray_task`)."""
    import ray

    req, options = ray_task(req, resources)
    return ray.get(ray.remote(**options)(run_training).remote(req))
