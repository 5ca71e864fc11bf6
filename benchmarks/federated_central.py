"""The centralised side of bench_federated: the same carts, the same labels, but the images go up.

`ImageRecorder` rides along a cart's federated learner: a second AutoLabeler, fed the same frame
signals, keeps the frame itself (PNG) and the box the device's detector cropped where the device's
labeler keeps the crop's embedding, so both hold the same insertions under the same labels (the
bench checks the counts match). `write_round` turns one round's recordings into labelled frames
in the Label stage's columns (what `merged_labels` writes: frame, SKU or empty, item box), and the
cloud trains on them exactly as the product's Learner turn does (`central_turn`: a dataset version
of the manual collection plus every round so far, `run_training` with `TrainConfig(init="parent")`:
the crop classifier and the detector fine-tuned from production, empty frames cropped as the
two-stage training crops them), then evaluates and gates the candidate like any other.
"""

from __future__ import annotations

import io
from collections import OrderedDict

import numpy as np

from edge_agent.federated.samples import AutoLabeler, SampleStore

RING = 256  # recent frames kept raw: an insertion's samples reach back <= ~10 s (100 frames at 10 fps)


class _FrameStore(SampleStore):
    """A SampleStore whose "embeddings" are frame numbers: on add, each becomes its recorded frame
    (PNG, box), so only labelled frames are ever encoded or kept."""

    def __init__(self, cap: int, ring: OrderedDict) -> None:
        super().__init__(cap)
        self.ring = ring
        # every sample ever added: (PNG, box, label, group: the insertion, or the one empty frame)
        self.rows: list[tuple[bytes, list[float] | None, int, int]] = []
        self.groups = 0

    def _add(self, space: str, embeddings: list[np.ndarray], label: int) -> None:
        super()._add(space, embeddings, label)  # the same count and eviction as the device's
        self.groups += 1
        for e in embeddings:
            png, box = self.ring[int(np.asarray(e).reshape(-1)[0])]
            self.rows.append((png, box, label, self.groups))


class ImageRecorder:
    def __init__(self, agent) -> None:
        fed = agent.federated
        self._ring: OrderedDict[int, tuple[bytes, list[float] | None]] = OrderedDict()
        self._frames = 0
        self.store = _FrameStore(fed.store.cap, self._ring)
        self.labeler = AutoLabeler(self.store, [], min_step_g=fed.cfg.min_step_g)
        self._last: np.ndarray | None = None
        self._version: str | None = None
        self.labels: list[str] = []
        self.agent = agent
        self.watch(agent.model)
        observe = fed.observe

        def observe_and_record(model, pred, sf, t):
            added = observe(model, pred, sf, t)
            if model.version != self._version:
                self._version = model.version
                self.labels = list(model.labels)
                self.labeler.set_labels(self.labels)
            self.labeler.update(t, self._last, [b.text for b in sf.barcodes], sf.weight_delta_g,
                                fed.space, sf.motion)
            return added

        fed.observe = observe_and_record

    def watch(self, model) -> None:
        """Record every frame `model` predicts and its detector box (call again after a swap)."""
        predict = model.predict

        def predict_and_keep(image):
            _, box, conf = model.locate(image)
            # only a box the device itself trusts (the rule's threshold) teaches the detector: the
            # frames of an insertion before the item is in view carry a weak box on an empty cart,
            # and fine-tuning on those taught the detector to box empty carts (empties 0.87 -> 0.07)
            weak = box is None or (model.detector is not None and conf < model.detector.min_confidence)
            self._ring[self._frames] = (_png(image), None if weak else [float(v) for v in box])
            while len(self._ring) > RING:
                self._ring.popitem(last=False)
            self._last = np.asarray([self._frames], np.float32)
            self._frames += 1
            return predict(image)

        model.predict = predict_and_keep


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def write_round(lake, recorders: list[ImageRecorder], round_no: int, start: list[int]) -> tuple[str, int]:
    """Rows `start[i]:` of each recorder as one labelled-frames Parquet in the lake (the columns
    flywheel.label.merge.write_labelled_frames writes); returns (key, rows). A session is one insertion
    (the product's is the clip around it: the split keeps near-duplicate frames on one side); empty
    samples are empty frames, as a human marks them."""
    import polars as pl

    rows = []
    for rec, s in zip(recorders, start, strict=True):
        for j, (png, box, label, group) in enumerate(rec.store.rows[s:], start=s):
            sku = rec.labels[label]
            empty = label == rec.labeler.empty
            rows.append({"frame_id": f"fed-{rec.agent.device_id}-{j}",
                         "session_id": f"fed-{rec.agent.device_id}-{group}",
                         "device_id": rec.agent.device_id, "store": rec.agent.store_id,
                         "distribution": "production", "sku": None if empty else sku, "is_empty": empty,
                         # an item frame the detector found nothing on has no box: two-stage drops it
                         "item_box": None if empty or box is None else box, "image_png": png})
    key = f"bench/federated_central/round={round_no}.parquet"
    buf = io.BytesIO()
    pl.DataFrame(rows, schema={"frame_id": pl.String, "session_id": pl.String, "device_id": pl.String,
                               "store": pl.String, "distribution": pl.String, "sku": pl.String,
                               "is_empty": pl.Boolean, "item_box": pl.List(pl.Float32),
                               "image_png": pl.Binary}).write_parquet(buf)
    lake.put(key, buf.getvalue())
    return key, len(rows)


def central_turn(lake, parent: str, sources: tuple[str, ...], model_id: str, cfg, rules, bench_gate) -> dict:
    """One Learner turn: the dataset version of the manual collection + `sources`, production
    `parent` fine-tuned on it (`cfg`: TrainConfig, init "parent"), evaluated against `parent`
    (made production first) and gated."""
    from flywheel.learner import registry
    from flywheel.learner.config import DatasetSpec, GateRules
    from flywheel.learner.pipeline import build_dataset, evaluate_candidate, gate_candidate
    from flywheel.learner.train import TrainRequest, run_training

    ds, _ = build_dataset(lake, DatasetSpec(), extra_sources=sources)
    result = run_training(TrainRequest(lake.uri, None, ds.version, cfg, model_id, parent_model_id=parent,
                                       rules=rules))
    ev = evaluate_candidate(lake, model_id)
    gate = gate_candidate(lake, model_id, GateRules(**bench_gate))
    training = result.card.training
    return {"candidate": model_id, "parent": parent, "dataset": ds.version,
            "train_frames": result.n_train, "seconds_train": round(result.seconds_train, 1),
            "init": training.get("init", {}).get("mode"),
            "detector": {k: training.get("detector", {}).get(k) for k in ("epochs", "init")},
            "item_frames_without_box": training.get("item_frames_without_box"),
            "top1": ev.candidate.metrics["production_top1"],
            "production_top1_before": ev.production.metrics["production_top1"] if ev.production else None,
            "manual_top1": ev.candidate.metrics.get("manual_top1"),
            "gate_passed": gate.passed, "gate_reasons": gate.reasons,
            "production_set": registry.production_model_id(lake)}
