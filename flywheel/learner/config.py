"""Configuration of the Learner as small frozen dataclasses; every field says what it controls.

They serialise to plain dicts (`asdict`), which is what goes into dataset ids, checkpoints and model
cards, so a number here changes the content hash of whatever it produced.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

EMPTY_CLASS = "empty"  # the label of frames with no item in view (sku is null, is_empty is true)


@dataclass(frozen=True)
class SplitRule:
    """Deterministic train/val split by group: all frames of one group land on the same side."""

    by: Literal["session_id", "device_id"] = "session_id"  # the group that never straddles splits
    val_fraction: float = 0.2  # share of groups (not frames) that go to validation
    salt: str = "flywheel-split-v1"  # changing it reshuffles the split and changes the dataset id
    # move whole groups so every class found in two or more groups has frames on both sides: a
    # class with no validation frames is never measured (and ultralytics reports the set invalid)
    cover_classes: bool = True

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset version is built from, besides its member frames."""

    task: Literal["classify", "detect"] = "classify"
    include_empty: bool = True  # classify: keep empty frames as the EMPTY_CLASS class
    split: SplitRule = field(default_factory=SplitRule)
    shard_rows: int = 2000  # frames per Parquet shard under datasets/<version>/data/

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RoiConfig:
    """The two-stage model (flywheel/learner/two_stage.py, edge_agent/crop.py): a one-class item
    detector on the whole frame, then the classifier on a square crop around its best box. The
    classifier is TrainConfig's (model_yaml, epochs, batch, lr0, patience, scale, auto_augment,
    white_balance) at `crop` px. Fields map 1:1 to benchmarks/bench_learner_roi.py's arguments
    (named in brackets); defaults are the recipe it measured (README, "Two-stage recipe")."""

    crop: int = 96  # crop classifier input side in px [--crop] (64: -4 points item-frame top-1)
    margin: float = 1.3  # crop side = the box's longer side x this [--margin]
    jitter_scale: tuple[float, float] = (0.95, 1.35)  # training crops: side x U(lo, hi)
    jitter_shift: float = 0.15  # training crops: centre moved by U(-s, s) x side per axis
    hsv_h: float = 0.03  # hue jitter of both trainings, against store colour casts [--hsv-h]
    # the classifier's "empty" class learns from background crops of the empty frames, around
    # "item_box": a random training item's true box [--cls-empty], or "detector": the trained
    # detector's best box on that frame (what the device crops there). "item_box" leaves the two
    # trainings independent: they run concurrently, each on half the task's CPUs (two_stage.py)
    empty_crops: Literal["item_box", "detector"] = "item_box"
    det_model_yaml: str = "yolov8n.yaml"  # the detector's architecture (built from yaml)
    det_imgsz: int = 96  # detector input side: 320x240 frames letterboxed into it [--det-imgsz]
    # (128: same accuracy through the crop, 6.0 vs 3.2 ms p95, 1.5x the training)
    det_epochs: int = 15  # [--det-epochs]
    det_batch: int = 32
    det_lr0: float = 0.002  # AdamW (TrainConfig.optimizer)
    det_warmup_epochs: float = 3.0  # ultralytics' warm-up (>= 100 iterations when > 0)
    det_nbs: int = 64  # nominal batch: gradients accumulate to it; 0 = a step every batch
    det_patience: int = 8  # early stopping on the detector's validation fitness [--patience]
    # the detector's training precision (TrainConfig.precision): fp32, as bf16 made its epochs only
    # 1.2x faster here (its time is in the loss's box assignment and the letterbox) at lower mAP
    det_precision: Literal["auto", "fp32", "bf16"] = "fp32"
    # share of the detector's training frames seen under a random store camera's light, exposure,
    # noise and blur (flywheel/learner/store_light.py): the lab-trained bootstrap detector then
    # finds ~0.5 of store items instead of 0.01-0.30, and a refresh on a 4-cart week's filter boxes
    # helps instead of hurting (README, "Store light for the detector")
    det_store_light: float = 0.5
    # the same for the crop classifier's lab training frames (not the fleet's: they are store
    # frames already): the whole frame under a random store light, then cropped and gray-world
    # balanced as the device does (the balance undoes most of the colour, not the exposure,
    # crushed shadows, noise and blur); one light per frame and training. At 4 carts (stop 31):
    # bootstrap production 0.177 -> 0.230, turn 1 0.288 -> 0.320 (all frames lit: 0.292); the
    # oracle's four turns, all frames lit, still met issue 16 (README, "Store light for the
    # crop classifier")
    cls_store_light: float = 0.5
    # a turn whose parent (production) is a two-stage model: the detector (one class, "item": it
    # does not depend on the SKU list) is the parent's, shipped byte for byte when the dataset has
    # no boxed item frame the parent's dataset lacked; else fine-tuned from the parent's weights for
    # this many epochs (0: always reused). With TrainConfig.init "scratch", or no two-stage parent,
    # det_epochs from random weights (flywheel/learner/warm_start.py, prepare_detector). On the
    # oracle's first store turn (3,850 frames, ~62-70 s an epoch on one core beside the classifier)
    # the lab-trained bootstrap detector then finds 0.77-0.87 of store items (5 or 7 epochs; 3:
    # 0.57-0.70; reused: 0.24-0.51). 8 planned: the 560 s budget ran 7 (README, "Two-stage turns")
    det_refresh_epochs: int = 8
    # ... but only when the dataset brings at least this many boxed item frames the dataset of the
    # parent's detector lacked (a reused detector's: its parent's, so boxes drawn a few a turn add
    # up); fewer: the parent's detector ships unchanged. Drawn, simulated and the empty filter's
    # foreground boxes count (with its clean empties beside them: flywheel.label.filter_hints); a box
    # the parent's detector gave a fleet label never teaches the detector (two_stage.box_unboxed).
    # A refresh on 11-13 auto-label boxes (the federated bench) and one on 40 drawn store boxes
    # (bench_flywheel --max-boxes 40 with this minimum at 25) both taught it to box empty carts
    # (right empties 0.867 -> 0.42-0.60; frozen store empties 0.978 -> 0.356); an oracle turn
    # brings ~2,800 and is fine. With the filter's boxes and empties (bench_flywheel, 2026-12-03):
    # 134 (a 4-cart turn) lost manual items (boxed 0.935 -> 0.812; the gate blocked on manual
    # -0.11), 263 (two) lost 3 points on store items, 611 offline and 897 (the 40-cart turn: +13.7
    # production, gate passed) gained: so a refresh waited for 500. Since the detector trains under
    # store light (det_store_light) a 4-cart week's 143 boxes refresh it to +13.7 production, manual
    # +0.075, where reusing it gave +7.5 (bench_flywheel, stop 30): 100
    det_refresh_min_new_boxes: int = 100
    # the detector also trains on the clean store empties with a lab item pasted in, this many per
    # empty (flywheel/learner/copy_paste.py): store backgrounds with an exact item box, at no
    # human cost. Store empties without them taught the refresh that a store background means no
    # item (no box >= 0.25 on 43-62 % of store items). Two 4-cart turns' datasets, the same parent
    # (stop 32; README, "Copy-paste for the detector's refresh"): production 0.320 / 0.332 without,
    # 0.387 / 0.358 at 2, 0.410 / 0.368 at 3, 0.417 / 0.383 at 5
    det_paste_items: float = 5.0
    # ... but at most this many pasted frames: a 40-cart week brings ~890 store boxes of its own,
    # and every pasted frame lengthens the refresh's epochs
    det_paste_max: int = 600
    # P(empty) (edge_agent.crop.combine) [--empty-rule]: "product": 1 - box confidence; "gate":
    # a box from min_confidence on -> the classifier's SKUs, a weaker one -> "product", none ->
    # empty; "cls": the classifier's own empty class on the crop [--box-conf]
    empty_rule: Literal["product", "gate", "cls"] = "gate"  # +0.05-0.13 production vs product
    min_confidence: float = 0.25  # 0.05: empties 0.54 vs 0.90 right, item frames +0.014

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    """One training run of ultralytics YOLO on CPU, small and offline-safe."""

    task: Literal["classify", "detect"] = "classify"
    model_yaml: str = "yolov8n-cls.yaml"  # architecture built from yaml: no pretrained download
    # square input side; classify frames are stretched to imgsz x imgsz. 96 beats 64 on every
    # frozen set at the same training time (README, the oracle) within the device's 10 ms p95
    imgsz: int = 96
    # epochs, batch, scale and auto_augment: the two-stage recipe's crop classifier (README,
    # "Two-stage recipe": 30 epochs, batch 64, scale 0.2, RandAugment), the default model
    epochs: int = 30
    batch: int = 64
    seed: int = 0
    lr0: float = 0.002  # AdamW: 0.01 (the SGD default) diverges on tiny data
    optimizer: str = "AdamW"  # explicit: 'auto' picks by dataset size and prints a long notice
    patience: int = 100  # early stopping patience in epochs (large = off for short runs)
    warmup_epochs: float = 3.0  # ultralytics' linear warmup: min(this, epochs - 1) epochs
    # "parent": fine-tune from the production model (the run's lineage parent) when one exists with
    # this task and architecture: its head rows copied by class name, new classes added small
    # (flywheel/learner/warm_start.py); else, and with "scratch", from random weights
    init: Literal["scratch", "parent"] = "parent"
    finetune_warmup_epochs: float = 0.0  # warmup when fine-tuning: the weights are trained already
    # classifier epochs when fine-tuning from the parent: min(epochs, this). The warm oracle turn
    # (README, "Two-stage turns"), one core beside the detector's 8-epoch refresh, quiet: fp32 15
    # epochs 359 s, item frames 0.769, manual 0.845; bf16 (precision "auto") 30 epochs 421 s,
    # 0.780, manual 0.93, insertions 1.00 / 0.967 / 0.95 (README, "Training in bfloat16")
    finetune_epochs: int = 30
    # wall seconds from the run's start by which every training of it ends its last epoch (an
    # epoch that would end later is not started: yolo_env.stop_at; the card records the epochs run):
    # the 10-minute turn less export, golden checks and registration (~5 s) and slack. None: no limit
    time_budget_s: float | None = 560.0
    # classify: repeat rare classes' training frames, r_c = max(1, sqrt(balance * n_max / n_c))
    # (repeat-factor sampling); 0 = off
    balance: float = 0.0
    nbs: int = 64  # nominal batch: gradients accumulate to it before a step; 0 = step every batch
    fliplr: float = 0.0  # packaging text mirrored never occurs in a cart: no horizontal flips
    scale: float = 0.2  # classify: RandomResizedCrop area in (1 - scale, 1)
    hsv_v: float = 0.4  # brightness jitter: production stores are dimmer than the lab
    hsv_s: float = 0.4
    auto_augment: str | None = "randaugment"  # crop classifier: +2.6 points item frames, same CPU s
    # edge_agent/whitebalance.py, applied after the resize in training, evaluation and on the
    # device (model card, DeviceModelV1): a store's light colour is a per-channel gain that gray
    # world removes. The oracle (README): production item top-1 0.63 with it at 96 px, 20 epochs
    white_balance: Literal["none", "gray_world", "gray_world_exposure"] = "gray_world"
    # "auto": bfloat16 autocast where the CPU computes it natively (AVX512-BF16 / AMX), else fp32;
    # the crop classifier's epochs take 2.1x less time in bf16 here (yolo_env.amp_arg; README,
    # "Training in bfloat16"). The card records what ran. The detector has its own (RoiConfig)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    num_cpus: int = 2  # CPUs the Ray task reserves and training uses (yolo_env.use_cpus)
    # of them, data-loading processes (decoding + augmentation; at most num_cpus - 1); torch
    # threads get the rest.
    # 0 put augmentation in the training thread: one of two cores used (README, "Two-stage turns")
    workers: int = 1
    # the two-stage model (RoiConfig; the classifier's input is roi.crop, imgsz unused; classify
    # datasets with an empty class: train_candidate drops it on others, two_stage.fit_config).
    # None: one classifier on the whole frame (imgsz)
    roi: RoiConfig | None = field(default_factory=RoiConfig)

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def architecture(self) -> str:
        """What the model card names (warm start fine-tunes only a parent with the same)."""
        return f"{self.roi.det_model_yaml} -> {self.model_yaml}" if self.roi else self.model_yaml

    @classmethod
    def for_task(cls, task: str, **overrides) -> TrainConfig:
        if task == "detect":
            # from scratch (no pretrained weights offline) on a user's few hundred photos: a step
            # every batch, no 100-iteration warmup and a higher rate. With ultralytics' defaults
            # (accumulate to 64, warmup) 48 photos x 3 epochs made under one optimizer step per
            # epoch and mAP50 stayed 0.000; with these the same data reaches ~0.4 in 15 epochs
            # (white balance is the classifier's: detection trains on the frames as they are)
            overrides = {"model_yaml": "yolov8n.yaml", "imgsz": 96, "lr0": 0.005, "warmup_epochs": 0.0,
                         "nbs": 0, "white_balance": "none", "roi": None,
                         "precision": "fp32", **overrides}  # as RoiConfig.det_precision
        return cls(task=task, **overrides)  # type: ignore[arg-type]


@dataclass(frozen=True)
class GateRules:
    """Explicit rules a candidate must pass before any release; all thresholds in one place."""

    target_metric: str = "production_top1"  # the metric that must improve (see evaluate.py)
    slice_metric: str = "top1"  # the per-slice metric compared (detect: "map50")
    min_improvement: float = 0.005  # delta: candidate - production >= this on the target metric
    max_slice_regression: float = 0.05  # epsilon: no slice may drop by more than this
    min_slice_size: int = 30  # slices with fewer frames are reported but not gated (too noisy)
    latency_budget_ms: float = 25.0  # p95 ONNX Runtime CPU latency, batch 1
    onnx_max_abs_diff: float = 1e-3  # max |onnx - torch| on the golden inputs, x max|output| past 1
    onnx_min_top1_agreement: float = 1.0  # share of golden inputs where argmax agrees
    bootstrap_min_target: float = 0.0  # with no production model: the target must reach this
    # the worst insertion set's insertion-level top-1 (barcode + vote, as the device decides) must
    # reach this; 0 reports it without blocking. Regressions of each set are gated as slices "ins:*"
    min_insertion_top1: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def for_task(cls, task: str, **overrides) -> GateRules:
        """Detect is gated on box mAP@0.5 instead of top-1 accuracy."""
        if task == "detect":
            overrides = {"target_metric": "production_map50", "slice_metric": "map50",
                         "min_slice_size": 20, **overrides}
        return cls(**overrides)
