"""Region of interest for the Learner ceiling (issue 16): an item detector, then a classifier on the crop.

The whole-frame classifier sees a 320x240 frame squeezed to 96x96, where many items are under 12 px
and nothing says which package is the one being inserted. Here, on the oracle's data (the manual
collection plus perfectly labelled production frames, disjoint from the frozen sets: see
`bench_learner.oracle_lake`), two models are trained with ultralytics on CPU:

- a crop classifier (yolov8n-cls at `--crop` px) on square crops around the simulator's item box
  (margin 1.3, jittered in training so a detector's imprecise box is still a familiar crop);
- a one-class item detector (yolov8n at `--det-imgsz`) on the same frames (empty frames = no box).

Evaluated on the frozen standard and insertion sets two ways: `gt` (crops from the true box: the
classifier's own ceiling) and `det` (the detector's best box, confidence c: P(empty) = 1 - c, the
SKUs share c by the crop classifier; no box: empty), per set, pooled production, item frames,
and per insertion with the device's vote + barcode fusion (`edge_agent.insertion.decide`).
Also: ONNX Runtime batch-1 p95 of both models (one thread) and training seconds.
Run: `python -m benchmarks.bench_learner_roi --lake var/oracle-lake [--steps cls,det,eval]`
(the lake is the oracle's `--lake`; generated on first use, ~16 min on a loaded 2-core machine).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

MARGIN = 1.3  # crop side = longer box side x this: some context, the whole package


def log(*a) -> None:
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def decode(png: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGB"))


def balanced_crop(img: np.ndarray, box, size: int, wb: str, rng=None) -> np.ndarray:
    """`square_crop` white-balanced by the whole frame's statistics (edge_agent/whitebalance.py)."""
    from edge_agent.whitebalance import apply_gains, gains

    crop = square_crop(img, box, size, rng=rng)
    return crop if wb == "none" else apply_gains(crop, gains(img, wb))


def square_crop(img: np.ndarray, box, size: int, margin: float = MARGIN, rng=None) -> np.ndarray:
    """A size x size nearest-neighbour crop centred on the box (edge pixels repeat past the frame)."""
    H, W = img.shape[:2]
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = max(x2 - x1, y2 - y1, 8) * margin
    if rng is not None:  # a detector's box is never exact: train on jittered crops
        side *= rng.uniform(0.9, 1.25)
        cx += rng.uniform(-0.12, 0.12) * side
        cy += rng.uniform(-0.12, 0.12) * side
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
    for row in items.iter_rows(named=True):
        crop = balanced_crop(decode(row["image_png"]), row["item_box"], a.crop, a.wb,
                             rng=rng if row["split"] == "train" else None)
        Image.fromarray(crop).save(data / row["split"] / row["sku"] / f"{row['frame_id']}.png",
                                   compress_level=1)
    log("classifier data:", items.height, "item frames")
    t = time.perf_counter()
    YOLO("yolov8n-cls.yaml", task="classify").train(
        data=str(data), epochs=a.cls_epochs, imgsz=a.crop, batch=64, hsv_v=0.4, hsv_s=0.4, scale=0.2,
        name="cls", **_train_args(a))
    return time.perf_counter() - t


def train_detector(frames, a) -> float:
    import polars as pl
    from ultralytics import YOLO

    from flywheel.learner.materialize import materialize_detect

    f = frames.with_columns(pl.when(pl.col("sku").is_not_null()).then(pl.lit("item"))
                            .otherwise(pl.lit("empty")).alias("label"))
    f = f.filter((pl.col("label") == "empty") | pl.col("item_box").is_not_null())
    data = materialize_detect(f, ["empty", "item"], a.out / "det_data")
    t = time.perf_counter()
    YOLO("yolov8n.yaml", task="detect").train(
        data=str(data), epochs=a.det_epochs, imgsz=a.det_imgsz, batch=32, mosaic=0.0, name="det",
        **_train_args(a))
    return time.perf_counter() - t


def evaluate(lake, a) -> dict:
    import onnxruntime as ort
    from ultralytics import YOLO

    from edge_agent.insertion import decide
    from flywheel.learner.evaluate import softmax
    from flywheel.learner.insertion_eval import insertion_truth, read_barcodes
    from flywheel.learner.insertion_sets import read_insertion_sets
    from flywheel.learner.onnx_tools import latency_ms
    from flywheel.learner.reference_sets import read_standard_sets

    cls = YOLO(str(a.cls_weights or a.out / "cls" / "weights" / "best.pt"))
    det_w = a.det_weights or a.out / "det" / "weights" / "best.pt"
    det = YOLO(str(det_w)) if Path(det_w).exists() else None
    names = [cls.names[i] for i in sorted(cls.names)]
    labels = ["empty", *names]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    csess = ort.InferenceSession(cls.export(format="onnx", imgsz=a.crop, simplify=False, verbose=False),
                                 opts, providers=["CPUExecutionProvider"])
    res: dict = {"cls_latency": latency_ms(csess, a.crop)}
    if det is not None:
        dsess = ort.InferenceSession(det.export(format="onnx", imgsz=a.det_imgsz, simplify=False,
                                                verbose=False), opts, providers=["CPUExecutionProvider"])
        res["det_latency"] = latency_ms(dsess, a.det_imgsz)

    def classify(crops: list[np.ndarray]) -> np.ndarray:
        x = np.stack(crops).astype(np.float32).transpose(0, 3, 1, 2) / 255.0
        name = csess.get_inputs()[0].name
        out = np.concatenate([csess.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])  # batch 1
        return out if np.allclose(out.sum(1), 1, atol=1e-3) else softmax(out)

    def probs(frames, mode: str) -> np.ndarray:
        imgs = [decode(p) for p in frames["image_png"].to_list()]
        boxes: list = [None] * len(imgs)
        conf = np.zeros(len(imgs))
        if mode == "gt":
            for i, b in enumerate(frames["item_box"].to_list()):
                if b is not None:
                    boxes[i], conf[i] = b, 1.0
        else:
            for i in range(0, len(imgs), 64):
                for j, r in enumerate(det.predict(imgs[i:i + 64], imgsz=a.det_imgsz, conf=0.05,
                                                  verbose=False, device="cpu")):
                    if len(r.boxes):
                        k = int(r.boxes.conf.argmax())
                        boxes[i + j], conf[i + j] = r.boxes.xyxy[k].tolist(), float(r.boxes.conf[k])
        p = np.zeros((len(imgs), len(labels)))
        p[:, 0] = 1.0
        idx = [i for i, b in enumerate(boxes) if b is not None]
        if idx:
            q = classify([balanced_crop(imgs[i], boxes[i], a.crop, a.wb) for i in idx])
            for r, i in enumerate(idx):
                p[i, 0], p[i, 1:] = 1 - conf[i], conf[i] * q[r]
        return p

    std, _ = read_standard_sets(lake)
    ins, _ = read_insertion_sets(lake)
    for mode in ("gt", "det") if det is not None else ("gt",):
        r: dict = {}
        for name, frames in std.items():
            pred = np.array(labels, dtype=object)[probs(frames, mode).argmax(1)]
            truth = np.array(["empty" if e else s for e, s in
                              zip(frames["is_empty"].to_list(), frames["sku"].to_list(), strict=True)])
            item = frames["sku"].is_not_null().to_numpy()
            r[name] = {"n": len(truth), "n_item": int(item.sum()), "top1": float((pred == truth).mean()),
                       "item_top1": float((pred[item] == truth[item]).mean()),
                       "empty_top1": float((pred[~item] == truth[~item]).mean()) if (~item).any() else None}
            log(mode, name, r[name])
        prod = [k for k in std if k != "manual"]
        r["production_top1"] = sum(r[k]["top1"] * r[k]["n"] for k in prod) / sum(r[k]["n"] for k in prod)
        r["production_item_top1"] = (sum(r[k]["item_top1"] * r[k]["n_item"] for k in prod)
                                     / sum(r[k]["n_item"] for k in prod))
        for name, frames in ins.items():
            p = probs(frames, mode)
            codes = read_barcodes(frames["image_png"].to_list())
            truth = dict(insertion_truth(frames).iter_rows())
            rows: dict[str, list[int]] = {}
            for i, iid in enumerate(frames["insertion_id"].to_list()):
                rows.setdefault(iid, []).append(i)
            ds = {iid: decide(p[idx], labels, [codes[i] for i in idx]) for iid, idx in rows.items()
                  if iid in truth}
            r[f"ins:{name}"] = {
                "n": len(ds), "top1": float(np.mean([d.label == truth[k] for k, d in ds.items()])),
                "top1_vote": float(np.mean([d.vote_label == truth[k] for k, d in ds.items()]))}
            log(mode, "insertions", name, r[f"ins:{name}"])
        res[mode] = r
    return res


def main(argv: list[str]) -> dict:
    p = argparse.ArgumentParser(prog="bench_learner_roi")
    p.add_argument("--lake", type=Path, required=True, help="the oracle's lake (generated if empty)")
    p.add_argument("--out", type=Path, default=None, help="work folder (default var/bench/roi-...)")
    p.add_argument("--steps", default="cls,det,eval")
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--cls-epochs", type=int, default=25)
    p.add_argument("--det-imgsz", type=int, default=128)
    p.add_argument("--det-epochs", type=int, default=15)
    p.add_argument("--patience", type=int, default=8)
    p.add_argument("--hsv-h", type=float, default=0.03, help="hue jitter against store colour casts")
    p.add_argument("--wb", default="none", help="white balance of the crops (edge_agent/whitebalance.py)")
    p.add_argument("--cls-weights", type=Path, default=None, help="evaluate this classifier instead")
    p.add_argument("--det-weights", type=Path, default=None, help="evaluate this detector instead")
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
    frames, result["disjoint_from_frozen_sets"] = training_frames(lake, a.seed, a.n_per_store,
                                                                  a.per_session)
    if "cls" in steps:
        result["cls_train_s"] = train_classifier(frames, a)
    if "det" in steps:
        result["det_train_s"] = train_detector(frames, a)
    if "eval" in steps:
        result.update(evaluate(lake, a))
    result["load_after"] = os.getloadavg()
    name = a.out / f"result-{'-'.join(sorted(steps))}.json"
    name.write_text(json.dumps(result, indent=1) + "\n")
    log("wrote", name)
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=1))
