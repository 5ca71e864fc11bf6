"""The centralised side of bench_federated: the same carts, the same labels, but the images go up.

`ImageRecorder` rides along a cart's federated learner: a second AutoLabeler, fed the same frame
signals, keeps the model's input tensor of each frame where the device's labeler keeps its
embedding, so both hold the same insertions under the same labels (the bench checks the counts
match). `finetune` is what the cloud does with them: production's whole network (backbone and
head) fine-tuned on the pooled samples with AdamW, in torch, for a few epochs; the result is
registered like any candidate (flywheel.federated.candidate.register_weights) and evaluated on the
same frozen sets. The inputs are exactly the device's (DeviceModel.preprocess: resize, white
balance, normalisation), which evaluation reproduces bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_agent.federated.samples import AutoLabeler, SampleStore


class ImageRecorder:
    def __init__(self, agent) -> None:
        fed = agent.federated
        self.store = SampleStore(fed.store.cap)
        self.labeler = AutoLabeler(self.store, [], min_step_g=fed.cfg.min_step_g)
        self._last: np.ndarray | None = None
        self._version: str | None = None
        self.agent = agent
        self.watch(agent.model)
        observe = fed.observe

        def observe_and_record(model, pred, sf, t):
            added = observe(model, pred, sf, t)
            if model.version != self._version:
                self._version = model.version
                self.labeler.set_labels(list(model.labels))
            self.labeler.update(t, self._last, [b.text for b in sf.barcodes], sf.weight_delta_g,
                                fed.space, sf.motion)
            return added

        fed.observe = observe_and_record

    def watch(self, model) -> None:
        """Record `model`'s input of every frame it predicts (call again after a model swap)."""
        predict = model.predict

        def predict_and_keep(image):
            self._last = model.preprocess(image)[0]
            return predict(image)

        model.predict = predict_and_keep


def pooled(recorders: list[ImageRecorder], shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*(r.store.arrays() for r in recorders if len(r.store)), strict=True)
    return np.concatenate(xs).reshape(-1, *shape), np.concatenate(ys)


def replay_set(lake, model_id: str) -> tuple[np.ndarray, np.ndarray]:
    """The training split of the dataset version `model_id` was trained on, as device inputs: what
    a centralised loop trains on again beside the new labels (it trains on the cumulative data)."""
    import polars as pl

    from flywheel.learner import registry
    from flywheel.learner.datasets import load_dataset_version, read_members
    from flywheel.learner.preprocess import png_batch

    card, dev = registry.read_card(lake, model_id), registry.read_device_model(lake, model_id)
    members = read_members(lake, load_dataset_version(lake, card.lineage.dataset_version))
    members = members.filter(pl.col("split") == "train")
    if dev.detector is not None:  # two-stage: the crop classifier's input, around the true box
        members = members.filter(pl.col("item_box").is_not_null())
        x = crop_batch(members["image_png"].to_list(), members["item_box"].to_list(), card.imgsz,
                       dev.white_balance, dev.detector.crop_margin)
    else:
        x = png_batch(members["image_png"].to_list(), card.imgsz, dev.white_balance)
    x = (x - np.asarray(dev.mean, np.float32).reshape(1, 3, 1, 1)) / np.asarray(dev.std, np.float32).reshape(
        1, 3, 1, 1)
    index = {c: i for i, c in enumerate(dev.labels)}
    return x.astype(np.float32), np.asarray([index[lab] for lab in members["label"].to_list()], np.int64)


def crop_batch(pngs: list[bytes], boxes: list, size: int, wb: str, margin: float) -> np.ndarray:
    """[n, 3, size, size] in [0, 1]: each frame's square crop around its item box, as the Learner
    crops its training images (edge_agent.crop.balanced_crop, no jitter)."""
    import io

    from PIL import Image

    from edge_agent.crop import balanced_crop

    crops = [balanced_crop(np.asarray(Image.open(io.BytesIO(p)).convert("RGB")), b, size, wb, margin=margin)
             for p, b in zip(pngs, boxes, strict=True)]
    return np.stack(crops).astype(np.float32).transpose(0, 3, 1, 2) / 255.0


def finetune(weights: Path, x: np.ndarray, y: np.ndarray, out: Path, *, epochs: int = 5,
             lr: float = 3e-4, batch: int = 32, seed: int = 0, threads: int = 2) -> dict:
    """Fine-tune the ultralytics classifier checkpoint `weights` (all layers) on (x, y); writes the
    checkpoint `out`; returns the loss per epoch and the training accuracy."""
    import time

    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    ckpt = torch.load(weights, map_location="cpu", weights_only=False)
    net = (ckpt.get("ema") or ckpt["model"]).float()
    for p in net.parameters():
        p.requires_grad_(True)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    xt, yt = torch.from_numpy(np.ascontiguousarray(x, np.float32)), torch.from_numpy(y.astype(np.int64))
    rng = np.random.default_rng(seed)
    losses, t0 = [], time.perf_counter()
    for _ in range(epochs):
        net.train()
        order, total = rng.permutation(len(y)), 0.0
        for i in range(0, len(y), batch):
            idx = torch.from_numpy(order[i:i + batch])
            if len(idx) < 2:  # batch norm needs two samples in training mode
                continue
            loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(round(total / len(y), 4))
    net.eval()
    with torch.inference_mode():
        out_logits = torch.cat([net(xt[i:i + 256])[1] for i in range(0, len(y), 256)])
    train_top1 = float((out_logits.argmax(1) == yt).float().mean())
    ckpt["model"], ckpt["ema"] = net, None
    torch.save(ckpt, out)
    return {"epochs": epochs, "lr": lr, "batch": batch, "samples": int(len(y)), "loss": losses,
            "train_top1": round(train_top1, 4), "seconds": round(time.perf_counter() - t0, 1)}
