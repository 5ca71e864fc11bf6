"""Region of interest for the Learner ceiling (issue 16): an item detector, then a classifier on the crop.

The whole-frame classifier sees a 320x240 frame squeezed to 96x96, where many items are under 12 px
and nothing says which package is the one being inserted. Here, on the oracle's data (the manual
collection plus perfectly labelled production frames, disjoint from the frozen sets: see
`bench_learner.oracle_lake`), two models are trained with ultralytics on CPU:

- a crop classifier (yolov8n-cls at `--crop` px) on square crops around the simulator's item box
  (`MARGIN`, jittered in training by `JITTER_SIZE` / `JITTER_SHIFT` so a detector's box is still a
  familiar crop; gray-world balanced by the whole frame's statistics), optionally with an "empty"
  class of background crops (`--cls-empty`) or on the detector's own boxes (`--cls-boxes-from`);
- a one-class item detector (yolov8n at `--det-imgsz`) on the same frames (empty frames = no box;
  the simulator's box is the item being inserted, so items lying in the basket are background).

Evaluated on the frozen standard and insertion sets two ways: `gt` (crops from the true box: the
classifier's own ceiling) and `det` (the detector's best box and its confidence), P(empty) formed by
each rule of `frame_probs` over a threshold sweep; per set, pooled production, item frames, and per
insertion with the device's vote + barcode fusion (`edge_agent.insertion.decide`, catalog reads
only, as the Learner's evaluation). `handoff` says what the detector hands the classifier (IoU
buckets, box shift and size, the classifier on detector vs true crops, false boxes on empty frames).
Per-frame model outputs are cached under <out>/cache, so rules re-score without re-running models.
Also: ONNX Runtime batch-1 latency of both models (one thread; the detector at its 4:3 input) and
training wall / CPU seconds. The `RECIPE` constants are the measured defaults (README, issue 16).
Run: `python -m benchmarks.bench_learner_roi --lake var/oracle-lake [--steps cls,det,eval] [--publish]`
(the lake is the oracle's `--lake`; generated on first use, ~16 min on a loaded 2-core machine);
evaluate other runs' weights with `--steps eval --cls-weights ... --det-weights ...`: a registry
model's too (`<lake>/models/<id>/weights.pt`, `detector.pt`: its classes from the card beside them),
on any lake with the frozen sets, so a bench_flywheel turn's detector and classifier can be mixed
with its parent's to see which stage moved (README, "Store light for the crop classifier").
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

# The two-stage recipe measured here (README "Two-stage recipe"); each maps to one config field.
DET_IMGSZ = 96  # detector input, letterboxed square as in training (128 px: same accuracy, 1.6x cost)
DET_EPOCHS = 15
CROP = 96  # crop classifier input (64 px: -4 points item-frame top-1)
CLS_EPOCHS = 30
PATIENCE = 10  # early stopping on validation top-1 (never triggered within 30 epochs)
MARGIN = 1.3  # crop side = longer box side x this: some context, the whole package
JITTER_SIZE = (0.95, 1.35)  # training crops: side x U(lo, hi) (a detector's box is larger, rarely smaller)
JITTER_SHIFT = 0.15  # ... and centre + U(-s, s) x side on each axis
WHITE_BALANCE = "gray_world"  # of the crop, by the whole frame's statistics
EMPTY_RULE = "gate"  # how P(empty) is formed (frame_probs)
BOX_CONF = 0.25  # detector confidence from which a box is the item (the rule's threshold)


def cpu_s() -> float:
    """User + system CPU seconds of this process and its waited-for children (torch threads included)."""
    import resource

    return sum(getattr(resource.getrusage(w), f) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))


def timed(fn, *args) -> dict:
    t, c = time.perf_counter(), cpu_s()
    fn(*args)
    return {"wall_s": round(time.perf_counter() - t, 1), "cpu_s": round(cpu_s() - c, 1),
            "load": os.getloadavg()}


def log(*a) -> None:
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def decode(png: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGB"))


def encode(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def balance(rgb: np.ndarray, wb: str) -> np.ndarray:
    from edge_agent.whitebalance import white_balance

    return rgb if wb == "none" else white_balance(rgb, wb)


def balanced_crop(img: np.ndarray, box, size: int, wb: str, rng=None, margin: float = MARGIN,
                  jitter: tuple[float, float, float] = (*JITTER_SIZE, JITTER_SHIFT)) -> np.ndarray:
    """`square_crop` white-balanced by the whole frame's statistics (edge_agent/whitebalance.py)."""
    from edge_agent.whitebalance import apply_gains, gains

    crop = square_crop(img, box, size, margin=margin, rng=rng, jitter=jitter)
    return crop if wb == "none" else apply_gains(crop, gains(img, wb))


def square_crop(img: np.ndarray, box, size: int, margin: float = MARGIN, rng=None,
                jitter: tuple[float, float, float] = (*JITTER_SIZE, JITTER_SHIFT)) -> np.ndarray:
    """A size x size nearest-neighbour crop centred on the box (edge pixels repeat past the frame)."""
    H, W = img.shape[:2]
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = max(x2 - x1, y2 - y1, 8) * margin
    if rng is not None:  # a detector's box is never exact: train on jittered crops
        side *= rng.uniform(jitter[0], jitter[1])
        cx += rng.uniform(-jitter[2], jitter[2]) * side
        cy += rng.uniform(-jitter[2], jitter[2]) * side
    grid = (np.arange(size) + 0.5) * side / size - side / 2
    ys = np.clip((cy + grid).astype(int), 0, H - 1)
    xs = np.clip((cx + grid).astype(int), 0, W - 1)
    return np.ascontiguousarray(img[ys][:, xs])


def training_frames(lake, seed: int, n_per_store: int, per_session: int):
    """Manual collection + oracle production frames, split 80/20 by session (hash)."""
    import polars as pl

    from benchmarks.bench_learner import oracle_lake
    from flywheel.learner.labelled_frames import read_frames
    from flywheel.learner.reference_sets import read_manual_collection

    keys, disjoint, _ = oracle_lake(lake, seed, n_per_store, per_session)
    cols = ["frame_id", "session_id", "sku", "is_empty", "item_box", "image_png"]
    _, manual = read_manual_collection(lake)
    frames = pl.concat([manual.select(cols), *(read_frames(lake.get(k)).select(cols) for k in keys)])
    val = frames["session_id"].map_elements(
        lambda s: int(hashlib.sha256(s.encode()).hexdigest()[:8], 16) % 5 == 0, return_dtype=pl.Boolean)
    return frames.with_columns(pl.when(val).then(pl.lit("val")).otherwise(pl.lit("train")).alias("split")), \
        disjoint


def _train_args(a) -> dict:
    return dict(workers=0, device="cpu", amp=False, seed=0, deterministic=True, lr0=0.002,
                optimizer="AdamW", patience=a.patience, fliplr=0.0, hsv_h=a.hsv_h, pretrained=False,
                plots=False, verbose=False, project=str(a.out), exist_ok=True)


def train_classifier(frames, a) -> float:
    import polars as pl
    from PIL import Image
    from ultralytics import YOLO

    data = a.out / "cls_data"
    rng = np.random.default_rng(0)
    items = frames.filter(pl.col("sku").is_not_null() & pl.col("item_box").is_not_null())
    for sku in items["sku"].unique().to_list():  # every class folder on both sides
        for side in ("train", "val"):
            (data / side / sku).mkdir(parents=True, exist_ok=True)
    det_boxes: dict[str, np.ndarray] = {}
    if a.cls_boxes_from:  # the detector's own boxes (IoU >= 0.3 with the truth) for training crops
        train = items.filter(pl.col("split") == "train")
        boxes, confs = detect(YOLO(str(a.cls_boxes_from)), [decode(b) for b in train["image_png"]], a)
        for fid, tb, b, c in zip(train["frame_id"], train["item_box"], boxes[:, 0], confs[:, 0],
                                 strict=True):
            if c > 0 and iou(b, np.asarray(tb, float)) >= 0.3:
                det_boxes[fid] = b
        log("classifier: detector boxes for", len(det_boxes), "of", train.height, "training crops")
    for row in items.iter_rows(named=True):
        box = det_boxes.get(row["frame_id"])
        crop = balanced_crop(decode(row["image_png"]), row["item_box"] if box is None else box, a.crop, a.wb,
                             rng=rng if row["split"] == "train" and box is None else None, margin=a.margin,
                             jitter=(*a.jitter_size, a.jitter_shift))
        Image.fromarray(crop).save(data / row["split"] / row["sku"] / f"{row['frame_id']}.png",
                                   compress_level=1)
    if a.cls_empty:  # background crops where items usually are: the classifier's own "empty" class
        empties = frames.filter(pl.col("sku").is_null())
        true_boxes = items["item_box"].to_list()
        for side in ("train", "val"):
            (data / side / "empty").mkdir(parents=True, exist_ok=True)
        for row in empties.iter_rows(named=True):
            box = true_boxes[int(rng.integers(len(true_boxes)))]
            crop = balanced_crop(decode(row["image_png"]), box, a.crop, a.wb, rng=rng, margin=a.margin)
            Image.fromarray(crop).save(data / row["split"] / "empty" / f"{row['frame_id']}.png",
                                       compress_level=1)
        log("classifier empty class:", empties.height, "background crops")
    log("classifier data:", items.height, "item frames")
    t = time.perf_counter()
    YOLO("yolov8n-cls.yaml", task="classify").train(
        data=str(data), epochs=a.cls_epochs, imgsz=a.crop, batch=64, hsv_v=0.4, hsv_s=0.4, scale=0.2,
        auto_augment=a.auto_augment or None, erasing=a.erasing, cache=a.cls_cache or False, name="cls",
        **_train_args(a))
    return time.perf_counter() - t


def train_detector(frames, a) -> float:
    import polars as pl
    from ultralytics import YOLO

    from flywheel.learner.materialize import materialize_detect

    f = frames.with_columns(pl.when(pl.col("sku").is_not_null()).then(pl.lit("item"))
                            .otherwise(pl.lit("empty")).alias("label"))
    f = f.filter((pl.col("label") == "empty") | pl.col("item_box").is_not_null())
    if a.det_wb != "none":  # the detector sees the balanced frame, as the device would give it
        f = f.with_columns(pl.col("image_png").map_elements(lambda b: encode(balance(decode(b), a.det_wb)),
                                                            return_dtype=pl.Binary))
    data = materialize_detect(f, ["empty", "item"], a.out / "det_data")
    t = time.perf_counter()
    YOLO("yolov8n.yaml", task="detect").train(
        data=str(data), epochs=a.det_epochs, imgsz=a.det_imgsz, batch=32, mosaic=0.0, name="det",
        **_train_args(a))
    return time.perf_counter() - t


def iou(a, b) -> float:
    """Intersection over union of two x1 y1 x2 y2 boxes (0 when either is missing)."""
    if a is None or b is None or np.isnan(a).any() or np.isnan(b).any():
        return 0.0
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def detect(det, imgs: list[np.ndarray], a, k_top: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The detector's top-k boxes [n, k, 4] (NaN when fewer) and confidences [n, k] (0) per frame."""
    n = len(imgs)
    top_box, top_conf = np.full((n, k_top, 4), np.nan), np.zeros((n, k_top))
    for i in range(0, n, 64):
        # numpy images go into ultralytics' predict as BGR (cv2's order; it converts to the RGB it
        # trained on): an RGB array here swaps red and blue, and costs the detector its recall
        batch = [np.ascontiguousarray(balance(im, a.det_wb)[..., ::-1]) for im in imgs[i:i + 64]]
        for j, r in enumerate(det.predict(batch, imgsz=a.det_imgsz, conf=0.01, verbose=False, device="cpu",
                                          rect=a.det_rect)):
            if len(r.boxes):
                order = np.argsort(-r.boxes.conf.numpy())[:k_top]
                top_box[i + j, :len(order)] = r.boxes.xyxy.numpy()[order]
                top_conf[i + j, :len(order)] = r.boxes.conf.numpy()[order]
    return top_box, top_conf


def frame_probs(out: dict, rule: str, box_conf: float) -> np.ndarray:
    """[n, 1 + n_skus] label probabilities (label 0 = empty) from the detector's best box confidence
    `conf` and the crop classifier's SKU probabilities `q`, by the P(empty) rule:
    - "product": P(empty) = 1 - conf, SKU k = conf * q_k (a doubtful box turns a right SKU into empty);
    - "gate": a box at or above `box_conf` -> the classifier's q as it is (P(empty) = 0); a weaker box
      -> the "product" vector (its top is empty, so the frame abstains from the device's vote, but an
      insertion where every frame abstains is still decided by those SKU probabilities); none -> empty;
    - "cls": the classifier's own empty class (q[:, 0], trained on background crops) on the best box;
      no box above `box_conf` -> empty."""
    conf, q = out["conf"], out["q"]
    n = len(conf)
    has_empty = out.get("cls_empty", False)
    p = np.zeros((n, q.shape[1] + (0 if has_empty else 1)))
    p[:, 0] = 1.0
    boxed = conf >= box_conf if rule != "product" else conf > 0
    if rule == "product":
        qs = q[:, 1:] / np.clip(q[:, 1:].sum(1, keepdims=True), 1e-9, None) if has_empty else q
        p[boxed, 0] = 1 - conf[boxed]
        p[boxed, 1:] = conf[boxed, None] * qs[boxed]
    elif rule == "gate":
        qs = q[:, 1:] / np.clip(q[:, 1:].sum(1, keepdims=True), 1e-9, None) if has_empty else q
        weak = (conf > 0) & ~boxed
        p[weak, 0] = 1 - conf[weak]
        p[weak, 1:] = conf[weak, None] * qs[weak]
        p[boxed, 0] = 0.0
        p[boxed, 1:] = qs[boxed]
    elif rule == "cls":
        if not has_empty:
            raise ValueError("rule 'cls' needs a classifier trained with an empty class (--cls-empty)")
        p[boxed] = q[boxed]
    else:
        raise ValueError(f"unknown P(empty) rule {rule!r}")
    return p


def score(std: dict, ins: dict, outs: dict, codes: dict, labels: list[str], rule: str,
          box_conf: float, known: set[str] | None = None) -> dict:
    """Per frozen set top-1 (all / item frames / empty frames), pooled production, and per insertion
    set the device's fused decision (`edge_agent.insertion.decide`) and its vote alone."""
    from edge_agent.insertion import decide
    from flywheel.learner.insertion_eval import insertion_truth

    r: dict = {}
    for name, frames in std.items():
        pred = np.array(labels, dtype=object)[frame_probs(outs[name], rule, box_conf).argmax(1)]
        truth = np.array(["empty" if e else s for e, s in
                          zip(frames["is_empty"].to_list(), frames["sku"].to_list(), strict=True)])
        item = frames["sku"].is_not_null().to_numpy()
        r[name] = {"n": len(truth), "n_item": int(item.sum()), "top1": float((pred == truth).mean()),
                   "item_top1": float((pred[item] == truth[item]).mean()),
                   "empty_top1": float((pred[~item] == truth[~item]).mean()) if (~item).any() else None}
    prod = [k for k in std if k != "manual"]
    r["production_top1"] = sum(r[k]["top1"] * r[k]["n"] for k in prod) / sum(r[k]["n"] for k in prod)
    r["production_item_top1"] = (sum(r[k]["item_top1"] * r[k]["n_item"] for k in prod)
                                 / sum(r[k]["n_item"] for k in prod))
    for name, frames in ins.items():
        p = frame_probs(outs[f"ins:{name}"], rule, box_conf)
        truth = dict(insertion_truth(frames).iter_rows())
        rows: dict[str, list[int]] = {}
        for i, iid in enumerate(frames["insertion_id"].to_list()):
            rows.setdefault(iid, []).append(i)
        ds = {iid: decide(p[idx], labels, [codes[name][i] for i in idx], known) for iid, idx in rows.items()
              if iid in truth}
        r[f"ins:{name}"] = {
            "n": len(ds), "top1": float(np.mean([d.label == truth[k] for k, d in ds.items()])),
            "top1_vote": float(np.mean([d.vote_label == truth[k] for k, d in ds.items()]))}
    return r


def handoff(frames, det_out: dict, gt_out: dict, box_conf: float) -> dict:
    """What the detector hands the classifier, per frozen set: on item frames, the best box's IoU with
    the true box (buckets), whether any of its top boxes would have matched (a ranking miss), how far
    the box is off (centre shift / true box side, size ratio), and the classifier's top-1 on the
    detector's crop vs on the true crop of the same frames; on empty frames, false boxes."""
    truth = frames["sku"].to_list()
    true_boxes = frames["item_box"].to_list()
    item = np.array([s is not None and b is not None for s, b in zip(truth, true_boxes, strict=True)])
    names = det_out["names"]
    conf = det_out["conf"]
    rows = []
    for i in np.flatnonzero(item):
        tb = np.asarray(true_boxes[i], float)
        box = det_out["box"][i]
        j = iou(box, tb) if conf[i] >= box_conf else 0.0
        top = [iou(b, tb) for b, c in zip(det_out["top_box"][i], det_out["top_conf"][i], strict=True)
               if c >= box_conf]
        side = max(tb[2] - tb[0], tb[3] - tb[1], 1.0)
        shift = (np.hypot((box[0] + box[2] - tb[0] - tb[2]) / 2, (box[1] + box[3] - tb[1] - tb[3]) / 2)
                 / side) if conf[i] >= box_conf else np.nan
        size = (np.sqrt((box[2] - box[0]) * (box[3] - box[1]) / max((tb[2] - tb[0]) * (tb[3] - tb[1]), 1))
                if conf[i] >= box_conf else np.nan)
        rows.append((j, max(top, default=0.0), shift, size,
                     names[int(det_out["q"][i].argmax())] == truth[i] if conf[i] >= box_conf else False,
                     names[int(gt_out["q"][i].argmax())] == truth[i]))
    a = np.array(rows, dtype=float).reshape(-1, 6)
    res: dict = {"n_item": int(item.sum())}
    buckets = {"no_box": conf[item] < box_conf, "iou<0.1": (a[:, 0] < 0.1) & (conf[item] >= box_conf),
               "0.1-0.5": (a[:, 0] >= 0.1) & (a[:, 0] < 0.5), "0.5-0.7": (a[:, 0] >= 0.5) & (a[:, 0] < 0.7),
               ">=0.7": a[:, 0] >= 0.7}
    for k, m in buckets.items():
        res[k] = {"share": float(m.mean()), "cls_on_det": float(a[m, 4].mean()) if m.any() else None,
                  "cls_on_true": float(a[m, 5].mean()) if m.any() else None}
    miss = a[:, 0] < 0.5
    res["ranking_miss"] = float((miss & (a[:, 1] >= 0.5)).mean())  # a lower-ranked box was right
    ok = ~np.isnan(a[:, 2]) & (a[:, 0] >= 0.5)
    res["shift_p50_p90"] = [float(np.percentile(a[ok, 2], q)) for q in (50, 90)] if ok.any() else None
    res["size_p10_p50_p90"] = [float(np.percentile(a[ok, 3], q)) for q in (10, 50, 90)] if ok.any() else None
    empty = ~item
    res["n_empty"] = int(empty.sum())
    res["empty_false_box"] = float((conf[empty] >= box_conf).mean()) if empty.any() else None
    res["conf_item_p10_p50"] = [float(np.percentile(conf[item], q)) for q in (10, 50)]
    res["conf_empty_p50_p90"] = ([float(np.percentile(conf[empty], q)) for q in (50, 90)]
                                 if empty.any() else None)
    return res


class FixedInput:
    """An ONNX session fed its own (1, 3, h, w) input whatever `latency_ms` passes (it feeds squares)."""

    def __init__(self, session, hw: tuple[int, int]) -> None:
        self.session = session
        self.x = np.random.default_rng(0).random((1, 3, *hw), dtype=np.float32)

    def get_inputs(self):
        return self.session.get_inputs()

    def run(self, names, feed: dict):
        return self.session.run(names, {k: self.x for k in feed})


def evaluate(lake, a) -> dict:
    import onnxruntime as ort
    from ultralytics import YOLO

    from flywheel.learner.evaluate import softmax
    from flywheel.learner.insertion_eval import read_barcodes
    from flywheel.learner.insertion_sets import read_insertion_sets
    from flywheel.learner.onnx_tools import latency_ms
    from flywheel.learner.reference_sets import catalog_skus, read_standard_sets

    cls_w = Path(a.cls_weights or a.out / "cls" / "weights" / "best.pt")
    det_w = Path(a.det_weights or a.out / "det" / "weights" / "best.pt")
    # ultralytics exports beside the weights: copies here, so a registry model's own
    # detector.onnx / model files are never overwritten
    staged = a.out / "weights"
    staged.mkdir(parents=True, exist_ok=True)
    cls = YOLO(shutil.copy(cls_w, staged / "cls.pt"))
    det = YOLO(shutil.copy(det_w, staged / "det.pt")) if det_w.exists() else None
    names = [cls.names[i] for i in sorted(cls.names)]
    card = cls_w.parent / "model.json"  # a registry model's folder: its classes are named on the card
    if card.exists():
        names = json.loads(card.read_text())["classes"]
    has_empty = "empty" in names
    perm = ([names.index("empty")] + [i for i, n in enumerate(names) if n != "empty"] if has_empty
            else list(range(len(names))))  # label 0 = empty, as the device's label list has it
    names = [names[i] for i in perm]
    labels = names if has_empty else ["empty", *names]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    csess = ort.InferenceSession(cls.export(format="onnx", imgsz=a.crop, simplify=False, verbose=False),
                                 opts, providers=["CPUExecutionProvider"])
    res: dict = {"cls_latency": latency_ms(csess, a.crop, rounds=a.latency_rounds), "labels": len(labels)}
    if det is not None:  # square as trained, or the 4:3 frame letterboxed to det_imgsz wide
        shape = (-(-a.det_imgsz * 3 // 4 // 32) * 32 if a.det_rect else a.det_imgsz, a.det_imgsz)
        dsess = ort.InferenceSession(det.export(format="onnx", imgsz=shape, simplify=False,
                                                verbose=False), opts, providers=["CPUExecutionProvider"])
        res["det_latency"] = latency_ms(FixedInput(dsess, shape), a.det_imgsz, rounds=a.latency_rounds) | {
            "input_hw": shape}
        res["total_p95_ms"] = res["det_latency"]["p95_ms"] + res["cls_latency"]["p95_ms"]
    def cache_dir(mode: str) -> Path:  # true-box outputs depend on the classifier only
        key = f"{cls_w.resolve()}:{cls_w.stat().st_mtime}:{a.crop}:{a.wb}:{a.margin}"
        if mode == "det":
            key += f":{det_w.resolve()}:{det_w.stat().st_mtime}:{a.det_imgsz}:{a.det_wb}:bgr"
            key += f":rect={a.det_rect}"
        d = a.out / "cache" / hashlib.sha256(key.encode()).hexdigest()[:12]
        d.mkdir(parents=True, exist_ok=True)
        return d

    def classify(crops: list[np.ndarray]) -> np.ndarray:
        x = np.stack(crops).astype(np.float32).transpose(0, 3, 1, 2) / 255.0
        name = csess.get_inputs()[0].name
        out = np.concatenate([csess.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])  # batch 1
        return (out if np.allclose(out.sum(1), 1, atol=1e-3) else softmax(out))[:, perm]

    def outputs(key: str, frames, mode: str) -> dict:
        """Per frame: the best box, its confidence, the top-K boxes, the classifier's probabilities on
        the best box's crop (cached: rules and thresholds are scored without re-running models)."""
        f = cache_dir(mode) / f"{mode}-{key.replace(':', '_')}.npz"
        if f.exists():
            z = np.load(f)
            return {k: z[k] for k in z.files} | {"names": names, "cls_empty": has_empty}
        imgs = [decode(p) for p in frames["image_png"].to_list()]
        n, k_top = len(imgs), 5
        box = np.full((n, 4), np.nan)
        conf = np.zeros(n)
        top_box, top_conf = np.full((n, k_top, 4), np.nan), np.zeros((n, k_top))
        if mode == "gt":
            for i, b in enumerate(frames["item_box"].to_list()):
                if b is not None:
                    box[i], conf[i] = b, 1.0
        else:
            top_box, top_conf = detect(det, imgs, a, k_top)
            box, conf = top_box[:, 0].copy(), top_conf[:, 0].copy()
        q = np.zeros((n, len(names)))
        idx = [i for i in range(n) if conf[i] > 0]
        if idx:
            q[idx] = classify([balanced_crop(imgs[i], box[i], a.crop, a.wb, margin=a.margin) for i in idx])
        np.savez(f, box=box, conf=conf, top_box=top_box, top_conf=top_conf, q=q)
        return {"box": box, "conf": conf, "top_box": top_box, "top_conf": top_conf, "q": q,
                "names": names, "cls_empty": has_empty}

    std, _ = read_standard_sets(lake)
    ins, _ = read_insertion_sets(lake)
    codes_f = (a.out.parent / "roi-barcodes"  # the lake's frames' reads: shared by every run
               / f"{hashlib.sha256(str(a.lake.resolve()).encode()).hexdigest()[:12]}.json")
    codes_f.parent.mkdir(parents=True, exist_ok=True)
    if codes_f.exists():
        codes = json.loads(codes_f.read_text())
    else:
        codes = {name: read_barcodes(frames["image_png"].to_list()) for name, frames in ins.items()}
        codes_f.write_text(json.dumps(codes))
    known = catalog_skus(lake)  # barcode reads outside the catalog do not decide (as evaluate_insertions)
    sets = dict(std) | {f"ins:{k}": v for k, v in ins.items()}
    gt = {k: outputs(k, v, "gt") for k, v in sets.items()}
    res["gt"] = score(std, ins, gt, codes, labels, "gate", 0.5, known)
    log("gt", json.dumps(res["gt"]))
    if det is None:
        return res
    dt = {k: outputs(k, v, "det") for k, v in sets.items()}
    res["handoff"] = {k: handoff(v, dt[k], gt[k], a.box_conf) for k, v in std.items()}
    log("handoff", json.dumps(res["handoff"], indent=1))
    rules = ["product", "gate"] + (["cls"] if has_empty else [])
    res["det_rules"] = {f"{rule}@{t}": score(std, ins, dt, codes, labels, rule, t, known)
                        for rule in rules
                        for t in (sorted({*RULE_SWEEP, a.box_conf}) if rule != "product" else (0.0,))}
    for k, v in res["det_rules"].items():
        log(k, summary(v))
    res["det"] = res["det_rules"][f"{a.empty_rule}@{a.box_conf if a.empty_rule != 'product' else 0.0}"]
    return res


RULE_SWEEP = (0.02, 0.05, 0.1, 0.25, 0.5)


def summary(r: dict) -> str:
    """One table row: manual / A / B / C / production / item-frame production / insertion A / B / C."""
    st = [f"{r[k]['top1']:.3f}" for k in ("manual", "A", "B", "C") if k in r]
    ins = [f"{r[k]['top1']:.3f} ({r[k]['top1_vote']:.3f})" for k in sorted(r) if k.startswith("ins:")]
    return (f"{' / '.join(st)} | prod {r['production_top1']:.3f} | item {r['production_item_top1']:.3f}"
            f" | ins {' / '.join(ins)}")


def training_record(weights: Path, key: str) -> dict | None:
    """`key` ("cls_train" / "det_train") and the settings from the result JSON of the run that trained
    `weights` (<out>/<cls|det>/weights/best.pt)."""
    for f in sorted(weights.resolve().parents[2].glob("result-*.json")):
        r = json.loads(f.read_text())
        if key in r:
            return r[key] | {"run": str(f.parent), "settings": r["settings"]}
    return None


def main(argv: list[str]) -> dict:
    p = argparse.ArgumentParser(prog="bench_learner_roi")
    p.add_argument("--lake", type=Path, required=True,
                   help="the oracle's lake (generated if empty); `--steps eval` alone: any lake with "
                   "the frozen sets (a bench_flywheel turn's lake: its models' weights)")
    p.add_argument("--out", type=Path, default=None, help="work folder (default var/bench/roi-...)")
    p.add_argument("--steps", default="cls,det,eval")
    p.add_argument("--crop", type=int, default=CROP)
    p.add_argument("--cls-epochs", type=int, default=CLS_EPOCHS)
    p.add_argument("--det-imgsz", type=int, default=DET_IMGSZ)
    p.add_argument("--det-epochs", type=int, default=DET_EPOCHS)
    p.add_argument("--patience", type=int, default=PATIENCE)
    p.add_argument("--hsv-h", type=float, default=0.03, help="hue jitter against store colour casts")
    p.add_argument("--wb", default=WHITE_BALANCE, help="crop white balance (edge_agent/whitebalance.py)")
    p.add_argument("--cls-boxes-from", type=Path, default=None,
                   help="train the classifier on this detector's boxes (where IoU >= 0.3), else true boxes")
    p.add_argument("--det-rect", action="store_true",
                   help="detector input 4:3 (less padding) instead of the square it trained on: -0.06")
    p.add_argument("--det-wb", default="none", help="white balance of the detector's frames")
    p.add_argument("--cls-weights", type=Path, default=None, help="evaluate this classifier instead")
    p.add_argument("--det-weights", type=Path, default=None, help="evaluate this detector instead")
    p.add_argument("--margin", type=float, default=MARGIN, help="crop side / longer box side")
    p.add_argument("--jitter-size", type=lambda v: tuple(map(float, v.split(","))), default=JITTER_SIZE,
                   help="lo,hi: training crop side x U(lo, hi)")
    p.add_argument("--jitter-shift", type=float, default=JITTER_SHIFT, help="training crop centre shift")
    p.add_argument("--empty-rule", default=EMPTY_RULE, choices=["product", "gate", "cls"],
                   help="how P(empty) is formed (see frame_probs)")
    p.add_argument("--box-conf", type=float, default=BOX_CONF, help="detector confidence of a box")
    p.add_argument("--auto-augment", default="randaugment", help="classifier policy ('' = none)")
    p.add_argument("--erasing", type=float, default=0.4, help="classifier random erasing probability")
    p.add_argument("--cls-cache", default="", help="'ram': decoded crops kept in memory (speed only)")
    p.add_argument("--cls-empty", action="store_true",
                   help="train the classifier with an empty class (background crops of empty frames)")
    p.add_argument("--latency-rounds", type=int, default=3,
                   help="ONNX p95 = the best of this many 30-run rounds (bursts of a shared machine)")
    p.add_argument("--publish", action="store_true",
                   help="also write var/bench/learner_roi.json (the best run's figures)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--n-per-store", type=int, default=1100)
    p.add_argument("--per-session", type=int, default=8)
    a = p.parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from edge_agent.lake import Lake
    from flywheel.learner import yolo_env

    yolo_env.configure()
    root = Path(__file__).resolve().parents[1] / "var" / "bench"
    a.out = (a.out or root / f"roi-c{a.crop}e{a.cls_epochs}-d{a.det_imgsz}e{a.det_epochs}-{a.wb}").resolve()
    a.out.mkdir(parents=True, exist_ok=True)
    a.lake.mkdir(parents=True, exist_ok=True)
    lake = Lake.at_path(a.lake.resolve())
    steps = set(a.steps.split(","))
    result: dict = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()},
                    "load_before": os.getloadavg()}
    if steps & {"cls", "det"}:  # evaluation alone reads only the frozen sets: any lake that has them
        frames, result["disjoint_from_frozen_sets"] = training_frames(lake, a.seed, a.n_per_store,
                                                                      a.per_session)
    if "cls" in steps:
        result["cls_train"] = timed(train_classifier, frames, a)
    if "det" in steps:
        result["det_train"] = timed(train_detector, frames, a)
    if "eval" in steps:
        result.update(evaluate(lake, a))
    result["load_after"] = os.getloadavg()
    if "eval" in steps:  # the training figures of the runs whose weights were evaluated
        for key, w, sub in (("cls_train", a.cls_weights, "cls"), ("det_train", a.det_weights, "det")):
            if key not in result:
                result[key] = training_record(Path(w or a.out / sub / "weights" / "best.pt"), key)
        result["train_cpu_s"] = sum((result.get(k) or {}).get("cpu_s", 0.0)
                                    for k in ("cls_train", "det_train"))
    name = a.out / f"result-{'-'.join(sorted(steps))}.json"
    name.write_text(json.dumps(result, indent=1) + "\n")
    if a.publish:
        (root / "learner_roi.json").write_text(json.dumps(result, indent=1) + "\n")
    log("wrote", name)
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=1))
