"""The two-stage model (TrainConfig.roi): an item detector, then a classifier on the item's crop.

The whole-frame classifier sees a 320x240 frame squeezed to 96x96 and has no cue which package is
being inserted; here one training job trains, exports, golden-checks and registers both:

1. the detector: one class ("item") on the dataset's frames and their item boxes (empty frames have
   none), `roi.det_model_yaml` at `roi.det_imgsz`;
2. the crop classifier: TrainConfig's classifier at `roi.crop` px on square crops
   (edge_agent/crop.py) around the true item box, jittered in training as a detector's box is never
   exact (an item label without a box, e.g. a fleet label, at the parent detector's trusted box:
   `box_unboxed`); the "empty" class learns from crops around the trained detector's best box on empty
   frames, which is what the device crops there;
3. both exported to ONNX, each checked against torch on golden inputs (golden.npz holds both:
   `inputs`/`expected` for the classifier, `detector_inputs`/`detector_expected`), registered as
   weights.pt + model.onnx (classifier), detector.pt + detector.onnx, golden.npz; the device card
   (DeviceModelV1.detector) names the detector and its sha256.

Evaluation runs the registered model through the device's own runtime (`edge_agent.model.
DeviceModel` on a slot built from the registry files: `slot_model`), so the evaluation, the
insertion vote and the gate see exactly what a device will compute.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from edge_agent.lake import Lake
from flywheel.learner import registry
from flywheel.learner.config import EMPTY_CLASS, TrainConfig
from flywheel.learner.documents import ModelCardV1
from flywheel.learner.errors import DatasetError, RegistryError
from flywheel.learner.preprocess import decode_png

DETECTOR_FILE = registry.DETECTOR_FILE
DETECTOR_WEIGHTS = registry.DETECTOR_WEIGHTS
ITEM = "item"  # the detector's one class


def fit_config(cfg: TrainConfig, classes: list[str]) -> TrainConfig:
    """The default two-stage config on a dataset that cannot carry it (no "empty" class: e.g. a
    user's product photos, which have no boxes either) trains one classifier on the whole frame."""
    from dataclasses import replace

    return replace(cfg, roi=None) if cfg.roi is not None and EMPTY_CLASS not in classes else cfg


def preprocessing_doc(cfg: TrainConfig) -> dict:
    """What the device does per frame (the model card's `preprocessing`; DeviceModelV1 from it)."""
    from flywheel.learner.preprocess import preprocessing_doc as one_stage

    roi = cfg.roi
    assert roi is not None
    doc = one_stage(roi.crop, "classify", cfg.white_balance)
    doc["resize"] = {"width": roi.crop, "height": roi.crop, "mode": "square crop",
                     "interpolation": "nearest",
                     "crop": f"centre of the detector's best box, side = longer box side x "
                             f"{roi.margin}; pixels past the frame repeat the edge (edge_agent/crop.py)"}
    doc["white_balance_gains"] = "the whole frame's (a crop is mostly package)"
    doc["two_stage"] = {
        "detector": {"file": DETECTOR_FILE, "input_size": [roi.det_imgsz, roi.det_imgsz],
                     "resize": {"mode": "letterbox", "interpolation": "nearest", "pad_value": 114},
                     "scale": 1.0 / 255.0, "class": ITEM,
                     "output": "ultralytics detect head [1, 5, anchors] (cx, cy, w, h, score); "
                               "the best-scoring box, no NMS"},
        "crop": {"size": roi.crop, "margin": roi.margin},
        "empty_rule": roi.empty_rule, "min_confidence": roi.min_confidence,
        "combine": "edge_agent.crop.combine",
    }
    return doc


def _train_args(cfg: TrainConfig, project: Path, precision: str) -> dict:
    """What both trainings share (the whole-frame run's settings: CPU, seeded, offline)."""
    from flywheel.learner import yolo_env

    assert cfg.roi is not None
    return dict(workers=cfg.workers, device="cpu", amp=yolo_env.amp_arg(precision), seed=cfg.seed,
                deterministic=True,
                optimizer=cfg.optimizer, fliplr=cfg.fliplr, hsv_h=cfg.roi.hsv_h, hsv_v=cfg.hsv_v,
                hsv_s=cfg.hsv_s, plots=False, verbose=False, project=str(project),
                exist_ok=True)


def _best(run_dir: Path) -> Path:
    best = run_dir / "weights" / "best.pt"
    return best if best.exists() else run_dir / "weights" / "last.pt"


def detector_data(members: pl.DataFrame, tmp: Path) -> Path:
    """The detector's YOLO layout: every frame, one class ("item") on the item's box, none on
    empty frames; returns its data.yaml."""
    from flywheel.learner.materialize import materialize_detect

    frames = members.with_columns(pl.when(pl.col("label") == EMPTY_CLASS).then(pl.lit(EMPTY_CLASS))
                                  .otherwise(pl.lit(ITEM)).alias("label"))
    return materialize_detect(frames, [EMPTY_CLASS, ITEM], tmp / "det_data")


def train_detector(data: Path, cfg: TrainConfig, tmp: Path, parent: Path | None, meta: dict,
                   deadline: float | None = None) -> tuple[Path, Path, float]:
    """One-class item detector on `data` (detector_data), from random weights or fine-tuned
    `roi.det_refresh_epochs` from `parent` (a detector.pt), its last epoch ending by `deadline`
    (yolo_env.stop_at), checkpointed with `meta` and exported; returns (detector.pt,
    detector.onnx, train seconds). Module level and picklable arguments: it also runs in a spawned
    process beside the crop classifier (train_two_stage)."""
    from ultralytics import YOLO

    from flywheel.learner import onnx_tools, yolo_env
    from flywheel.learner.store_light import store_light_trainer
    from flywheel.learner.training_io import check_class_order, save_checkpoint

    yolo_env.configure()  # a spawned process starts without it
    roi = cfg.roi
    assert roi is not None
    t = time.perf_counter()
    model = YOLO(roi.det_model_yaml, task="detect")
    yolo_env.use_cpus(model, cfg.num_cpus, cfg.workers)
    yolo_env.stop_at(model, deadline)
    model.train(
        data=str(data), epochs=roi.det_refresh_epochs if parent else roi.det_epochs,
        imgsz=roi.det_imgsz, batch=roi.det_batch, lr0=roi.det_lr0, patience=roi.det_patience,
        warmup_epochs=cfg.finetune_warmup_epochs if parent else roi.det_warmup_epochs,
        nbs=roi.det_nbs or roi.det_batch, pretrained=str(parent) if parent else False,
        # a refresh (a few epochs, no early stopping) validates its last epoch only: the others'
        # mAP decided nothing (ultralytics validates the final epoch whatever `val` says)
        val=parent is None, mosaic=0.0, name="det", trainer=store_light_trainer(roi.det_store_light),
        **_train_args(cfg, tmp / "runs", roi.det_precision))
    seconds = time.perf_counter() - t
    best = _best(tmp / "runs" / "det")
    check_class_order(YOLO(str(best)).names, "detect", [EMPTY_CLASS, ITEM])
    ckpt = tmp / DETECTOR_WEIGHTS
    save_checkpoint(best, ckpt, {**meta, "role": "detector"})
    return ckpt, onnx_tools.export_onnx(ckpt, roi.det_imgsz, "detect"), seconds


def detector_boxes(onnx_path: Path, pngs: list[bytes], input_hw: tuple[int, int]
                   ) -> list[tuple[list[float], float]]:
    """The detector's best box and score per frame, as the device computes them."""
    from edge_agent.crop import best_box, letterbox
    from flywheel.learner.onnx_tools import onnx_session

    sess = onnx_session(onnx_path)
    name = sess.get_inputs()[0].name
    out = []
    for png in pngs:
        img = decode_png(png)
        out.append(best_box(sess.run(None, {name: letterbox(img, input_hw)})[0], img.shape[:2],
                            input_hw))
    return out


def box_unboxed(lake: Lake, parent_id: str | None, unboxed: pl.DataFrame, min_confidence: float,
                work: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the `unboxed` item rows the parent's detector boxed with a score of at least
    `min_confidence`, item_box filled; the rows still without a box). No two-stage parent: none.

    A fleet label names the product without a box (the annotator picks a SKU, an auto label comes
    from the pre-labellers), so before this every fleet label was dropped and a turn could not gain
    (bench_flywheel, turn 1: 148 merged labels, none reached the model). The device crops at its
    detector's best box, so the parent's box is the crop the device classifies; only a box the
    device trusts is used. These boxes teach the crop classifier only: the detector learns from
    drawn, simulated and the empty filter's boxes (its own predictions teach it nothing, and weak
    ones taught it to box empty carts: README, "Federated"). Since the filter boxes the item frames
    it keeps (flywheel.label.filter_hints), this is for the rest."""
    card = registry.read_card(lake, parent_id) if parent_id and not unboxed.is_empty() else None
    if card is None or DETECTOR_FILE not in card.files:
        return unboxed.head(0), unboxed
    h, w = card.preprocessing["two_stage"]["detector"]["input_size"]
    onnx = registry.fetch_file(lake, card.model_id, DETECTOR_FILE, work)
    found = detector_boxes(onnx, unboxed["image_png"].to_list(), (int(h), int(w)))
    keep = pl.Series([score >= min_confidence for _, score in found])
    boxed = unboxed.with_columns(pl.Series("item_box", [b for b, _ in found],
                                           dtype=unboxed.schema["item_box"]))
    return boxed.filter(keep), unboxed.filter(~keep)


def background_boxes(members: pl.DataFrame, how: str, det_onnx: Path | None, det_hw: tuple[int, int],
                     seed: int) -> dict[str, list[float]]:
    """frame id -> the box the classifier's "empty" class is cropped at, per empty frame:
    "detector": the trained detector's best box there; "item_box": a random training item's box
    (seeded), where items usually are."""
    empty = members.filter(pl.col("label") == EMPTY_CLASS)
    ids = empty["frame_id"].to_list()
    if how == "detector":
        assert det_onnx is not None
        boxes = [b for b, _ in detector_boxes(det_onnx, empty["image_png"].to_list(), det_hw)]
    else:
        items = members.filter(pl.col("label") != EMPTY_CLASS)["item_box"].to_list()
        rng = np.random.default_rng(seed)
        boxes = [items[int(rng.integers(len(items)))] for _ in ids]
    return dict(zip(ids, boxes, strict=True))


def lab_frame(row: dict) -> bool:
    """Not a fleet frame (merge.py writes those as "production"): the lab's manual collection, a
    user's own photos. Store light is for these; a fleet frame already is a store camera's."""
    return row.get("distribution") != "production"


def train_classifier(members: pl.DataFrame, classes: list[str], cfg: TrainConfig, tmp: Path,
                     empty_boxes: dict[str, list[float]], init, deadline: float | None = None
                     ) -> tuple[Path, float]:
    """The crop classifier: item frames cropped on their true box (jittered in training), empty
    frames on `empty_boxes`; from `init` (warm_start.WarmStart: the parent's crop classifier, its
    head grown by class name, or scratch); returns (best weights, train seconds)."""
    from ultralytics import YOLO

    from edge_agent.crop import balanced_crop
    from flywheel.learner import yolo_env
    from flywheel.learner.materialize import materialize_classify
    from flywheel.learner.store_light import store_light_sampler

    roi = cfg.roi
    assert roi is not None
    rng = np.random.default_rng(cfg.seed)
    light = store_light_sampler(roi.cls_store_light, cfg.seed)

    def crop(rgb: np.ndarray, row: dict) -> np.ndarray:
        box = empty_boxes[row["frame_id"]] if row["label"] == EMPTY_CLASS else row["item_box"]
        train = row["split"] == "train"
        seen = light(rgb) if train and lab_frame(row) else rgb
        return balanced_crop(seen, box, roi.crop, cfg.white_balance, rng if train else None,
                             roi.margin, roi.jitter_scale, roi.jitter_shift)

    data = materialize_classify(members, classes, tmp / "cls_data", roi.crop, cfg.white_balance,
                                image_fn=crop)
    t = time.perf_counter()
    model = YOLO(cfg.model_yaml, task="classify")
    yolo_env.use_cpus(model, cfg.num_cpus, cfg.workers)
    yolo_env.stop_at(model, deadline)
    with yolo_env.tolerate_val_class_gaps():
        model.train(
            data=str(data), epochs=init.epochs(cfg), imgsz=roi.crop, batch=cfg.batch, lr0=cfg.lr0,
            patience=cfg.patience, warmup_epochs=init.warmup_epochs(cfg), nbs=cfg.nbs or cfg.batch,
            pretrained=init.pretrained(), scale=cfg.scale, auto_augment=cfg.auto_augment, name="cls",
            **_train_args(cfg, tmp / "runs", cfg.precision))
    return _best(tmp / "runs" / "cls"), time.perf_counter() - t


def _golden(ckpt: Path, onnx_path: Path, real: np.ndarray, imgsz: int, task: str, rules
            ) -> tuple[np.ndarray, np.ndarray, dict]:
    from edge_agent.crop import golden_scale
    from flywheel.learner import onnx_tools

    golden = onnx_tools.golden_inputs(real, imgsz)
    expected = onnx_tools.torch_outputs(ckpt, golden)
    got = onnx_tools.onnx_outputs(onnx_tools.onnx_session(onnx_path), golden)
    # the detector's boxes compared as fractions of its input, as the gate and the device do
    cmp = (lambda x: golden_scale(x, imgsz)) if task == "detect" else (lambda x: x)
    return golden, expected, onnx_tools.compare_outputs(
        cmp(expected), cmp(got), rules.onnx_max_abs_diff, rules.onnx_min_top1_agreement, task)


def train_two_stage(req, lake: Lake, ds, members: pl.DataFrame, t0: float):
    """`run_training` for `TrainConfig.roi`: both models trained, exported, checked, registered."""
    from ultralytics import YOLO

    from edge_agent.crop import balanced_crop, letterbox
    from flywheel.learner import onnx_tools, warm_start, yolo_env
    from flywheel.learner.copy_paste import pasted_items
    from flywheel.learner.training_io import (
        N_GOLDEN_REAL,
        TrainResult,
        check_class_order,
        device_model,
        read_curves,
        save_checkpoint,
        where,
    )

    cfg = req.config
    roi = cfg.roi
    classes = ds.classes
    if cfg.task != "classify" or EMPTY_CLASS not in classes:
        raise DatasetError(f"a two-stage model needs a classify dataset with the {EMPTY_CLASS!r} "
                           f"class (P(empty) and the detector's negatives); got task {cfg.task!r}, "
                           f"classes {classes[:6]}")
    unboxed = members.filter((pl.col("label") != EMPTY_CLASS) & pl.col("item_box").is_null())
    # the detector learns from drawn, simulated and filter boxes only (box_unboxed: why)
    members = members.filter((pl.col("label") == EMPTY_CLASS) | pl.col("item_box").is_not_null())
    det_hw = (roi.det_imgsz, roi.det_imgsz)
    meta = {"model_id": req.model_id, "dataset_version": ds.version, "config": cfg.as_dict(),
            "classes": classes, "code_version": req.code_version, "parent_model": req.parent_model_id}
    # wall seconds by phase (the card's training.phases): "read" = the dataset read and verified
    seconds: dict[str, float] = {"read": time.perf_counter() - t0}
    # the trainings end by the run's time budget (time.time(): the detector may train in another process)
    deadline = (None if cfg.time_budget_s is None
                else time.time() - seconds["read"] + cfg.time_budget_s)
    with tempfile.TemporaryDirectory(prefix="flywheel-train2-") as tmp_dir:
        tmp = Path(tmp_dir)
        boxed = members.filter(pl.col("item_box").is_not_null())["frame_id"].to_list()
        det_init = warm_start.prepare_detector(lake, req.parent_model_id, cfg, boxed, tmp / "parent_det")
        init = warm_start.prepare(lake, req.parent_model_id, cfg, classes, tmp / "parent")
        # fleet labels name the product without a box: the crop the parent's detector gives them
        parent_boxed, no_box = box_unboxed(lake, req.parent_model_id, unboxed, roi.min_confidence,
                                           tmp / "parent_det")
        cls_members = pl.concat([members, parent_boxed])
        det_s = 0.0
        pasted = members.head(0)  # lab items on store empties for the detector (copy_paste.py)
        t = time.perf_counter()
        seconds["prepare"] = t - t0 - seconds["read"]

        def classifier(cls_cfg: TrainConfig, det_onnx: Path | None) -> tuple[Path, float]:
            t = time.perf_counter()
            empty_boxes = background_boxes(cls_members, roi.empty_crops, det_onnx, det_hw, cfg.seed)
            best, train_s = train_classifier(cls_members, classes, cls_cfg, tmp, empty_boxes, init,
                                             deadline)
            seconds["classifier"] = time.perf_counter() - t
            return best, train_s

        if det_init.mode == "reused":  # the parent's files as they are: the same sha256 ships
            det_ckpt, det_onnx = det_init.weights, det_init.onnx
            cls_best, cls_s = classifier(cfg, det_onnx)
        else:
            pasted = pasted_items(members, roi.det_paste_items, cfg.seed, roi.det_paste_max)
            data = detector_data(pl.concat([members, pasted]), tmp)
            seconds["detector_data"] = time.perf_counter() - t
            det_cpus = cfg.num_cpus // 2
            if roi.empty_crops == "item_box" and det_cpus:
                # the classifier does not need the detector: both train at once, each on half the
                # CPUs (one turn used ~1.2 of 2 cores in turn: README, "Two-stage turns")
                from concurrent.futures import ProcessPoolExecutor
                from dataclasses import replace
                from multiprocessing import get_context

                with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                    det_job = pool.submit(train_detector, data, replace(cfg, num_cpus=det_cpus),
                                          tmp, det_init.weights, meta, deadline)
                    cls_best, cls_s = classifier(replace(cfg, num_cpus=cfg.num_cpus - det_cpus), None)
                    t = time.perf_counter()
                    det_ckpt, det_onnx, det_s = det_job.result()
                    seconds["detector_wait"] = time.perf_counter() - t
            else:  # "detector": empty frames are cropped at the trained detector's boxes
                det_ckpt, det_onnx, det_s = train_detector(data, cfg, tmp, det_init.weights, meta,
                                                           deadline)
                cls_best, cls_s = classifier(cfg, det_onnx)
        assert det_ckpt is not None and det_onnx is not None
        t = time.perf_counter()
        check_class_order(YOLO(str(cls_best)).names, "classify", classes)
        ckpt = tmp / "weights.pt"
        save_checkpoint(cls_best, ckpt, {**meta, "role": "crop classifier"})
        onnx_path = onnx_tools.export_onnx(ckpt, roi.crop, "classify")

        # golden inputs: validation item frames' crops (true box) / whole frames, + probes
        val = members.filter(pl.col("split") == "val")
        items = val.filter(pl.col("label") != EMPTY_CLASS).head(N_GOLDEN_REAL)
        crops = [balanced_crop(decode_png(p), b, roi.crop, cfg.white_balance, margin=roi.margin)
                 for p, b in zip(items["image_png"].to_list(), items["item_box"].to_list(), strict=True)]
        real = (np.stack(crops).astype(np.float32).transpose(0, 3, 1, 2) / 255.0 if crops
                else np.zeros((0, 3, roi.crop, roi.crop), np.float32))
        inputs, expected, cls_val = _golden(ckpt, onnx_path, real, roi.crop, "classify", req.rules)
        real_det = np.concatenate([letterbox(decode_png(p), det_hw) for p in
                                   val.head(N_GOLDEN_REAL)["image_png"].to_list()])
        det_inputs, det_expected, det_val = _golden(det_ckpt, det_onnx, real_det, roi.det_imgsz,
                                                    "detect", req.rules)
        np.savez_compressed(tmp / "golden.npz", inputs=inputs, expected=expected,
                            detector_inputs=det_inputs, detector_expected=det_expected)
        files = {name: registry.put_file(lake, req.model_id, name, path) for name, path in
                 (("weights.pt", ckpt), ("model.onnx", onnx_path), (DETECTOR_WEIGHTS, det_ckpt),
                  (DETECTOR_FILE, det_onnx), ("golden.npz", tmp / "golden.npz"))}
        seconds["export_golden_register"] = time.perf_counter() - t
        curves = read_curves(tmp / "runs" / "cls" / "results.csv")
        det_curves = (read_curves(tmp / "runs" / "det" / "results.csv") if det_init.mode != "reused"
                      else [])
    det_planned = {"reused": 0, "fine-tuned": roi.det_refresh_epochs}.get(det_init.mode, roi.det_epochs)
    validation = {**cls_val, "passed": cls_val["passed"] and det_val["passed"],
                  "reason": "; ".join(f"{w}: {v['reason']}" for w, v in
                                      (("classifier", cls_val), ("detector", det_val)) if v["reason"]),
                  "max_abs_diff": max(cls_val["max_abs_diff"], det_val["max_abs_diff"]),
                  "n": cls_val["n"] + det_val["n"]}
    n_train = cls_members.filter(pl.col("split") == "train").height
    n_val = cls_members.height - n_train
    card = ModelCardV1(
        model_id=req.model_id, task="classify",
        architecture=cfg.architecture,
        classes=classes, empty_class=EMPTY_CLASS, imgsz=roi.crop,
        preprocessing=preprocessing_doc(cfg), files=files,
        lineage={"dataset_version": ds.version, "code_version": req.code_version,
                 "parent_model": req.parent_model_id, "train_config": cfg.as_dict(),
                 "dataset_sources": ds.manifest.get("sources", [])},
        training={"epochs": len(curves), "seconds_train": cls_s + det_s, "n_train": n_train,
                  "n_val": n_val, "final": curves[-1] if curves else {},
                  "item_frames_without_box": no_box.height,
                  "item_frames_boxed_by_parent": parent_boxed.height,
                  "phases": {k: round(v, 1) for k, v in seconds.items()},
                  "init": init.as_card(),
                  "classifier": {"epochs": len(curves), "epochs_planned": init.epochs(cfg),
                                 "seconds_train": cls_s,
                                 "precision": yolo_env.resolve_precision(cfg.precision),
                                 "store_light": roi.cls_store_light},
                  "detector": {"epochs": len(det_curves), "epochs_planned": det_planned,
                               "seconds_train": det_s,
                               "precision": (yolo_env.resolve_precision(roi.det_precision)
                                             if det_init.mode != "reused" else None),
                               "init": det_init.as_card(),
                               "store_light": (roi.det_store_light if det_init.mode != "reused"
                                               else None),
                               "pasted_items": pasted.height,
                               "final": det_curves[-1] if det_curves else {},
                               "onnx_validation": det_val}},
        onnx_validation=validation, created_at=datetime.now(UTC))
    registry.write_device_model(lake, device_model(card))
    registry.write_training_curves(lake, req.model_id, curves)
    registry.write_card(lake, card)  # the card goes last
    return TrainResult(req.model_id, ds.version, classes, curves, cls_s + det_s,
                       time.perf_counter() - t0, n_train, n_val, card, validation, where())


# -- evaluation: the device's runtime on the registered files -------------------------------------

class SlotModel:
    """A registered two-stage model in a device slot, run by `edge_agent.model.DeviceModel`: what
    evaluation, the insertion vote and the gate's latency read (evaluate.frame_probs uses
    `frame_probs`)."""

    def __init__(self, lake: Lake, model_id: str, slot: Path) -> None:
        from edge_agent.model import DeviceModel

        card = registry.read_card(lake, model_id)
        self.model = DeviceModel(registry.write_slot(lake, model_id, slot))
        if self.model.labels != card.classes:
            raise RegistryError(f"model {model_id}: device.json labels differ from the card's classes")

    def frame_probs(self, pngs: list[bytes]) -> np.ndarray:
        probs = [self.model.predict(decode_png(p)).probs for p in pngs]
        return (np.stack(probs).astype(np.float32) if probs
                else np.zeros((0, len(self.model.labels)), np.float32))

    def latency_ms(self, frame: np.ndarray, runs: int = 30, rounds: int = 3, warmup: int = 5) -> dict:
        """Batch-1 p95 of everything the device runs per frame (detector, crop, classifier), one
        thread; the best of `rounds` (see onnx_tools.latency_ms)."""
        for _ in range(warmup):
            self.model.predict(frame)
        per_round = [[self.model.predict(frame).latency_ms for _ in range(runs)]
                     for _ in range(rounds)]
        best = min(per_round, key=lambda ts: float(np.percentile(ts, 95)))
        return {"p50_ms": float(np.percentile(best, 50)), "p95_ms": float(np.percentile(best, 95)),
                "mean_ms": float(np.mean(best)), "runs": runs, "rounds": rounds, "batch": 1,
                "threads": 1, "what": "detector + crop + classifier (edge_agent.model.DeviceModel)"}


def is_two_stage(card: ModelCardV1) -> bool:
    return bool(card.preprocessing.get("two_stage"))


def first_frame(test_sets: dict[str, pl.DataFrame]) -> np.ndarray:
    """A camera frame for the latency probe (the frame size matters for the crop, not content)."""
    for frames in test_sets.values():
        if frames.height:
            return decode_png(frames["image_png"][0])
    return np.zeros((240, 320, 3), np.uint8)
