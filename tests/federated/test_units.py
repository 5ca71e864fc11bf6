"""Device head training, auto-labels, update checks and FedAvg, and the ONNX head surgery."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.federated.head import HeadTraining, accuracy, train_head
from edge_agent.federated.samples import AutoLabeler, SampleStore
from flywheel.federated.aggregate import AggregationRules, Update, check_update, fedavg


def blobs(n: int, d: int = 12, k: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 3
    y = rng.integers(0, k, n)
    return (centers[y] + rng.normal(size=(n, d))).astype(np.float32), y


def test_head_training_learns_the_local_labels_and_stays_near_the_global_head() -> None:
    x, y = blobs(300)
    w0, b0 = np.zeros((12, 4), np.float32), np.zeros(4, np.float32)
    w, b, m = train_head(x, y, w0, b0, HeadTraining(epochs=50))
    assert m["local_top1_before"] < 0.5 and m["local_top1_after"] > 0.9
    assert accuracy(x, y, w, b) == pytest.approx(m["local_top1_after"])
    assert w.dtype == np.float32 and w.shape == w0.shape and np.isfinite(w).all()
    far, _, _ = train_head(x, y, w0, b0, HeadTraining(epochs=50, prox_mu=1.0))
    assert np.linalg.norm(far) < np.linalg.norm(w)  # the proximal term holds it back


def test_prior_adjusted_training_does_not_forget_the_classes_a_device_never_sees() -> None:
    """A cart that saw only classes 0 and 1: plain training pushes 2 and 3 down (the average of
    such heads forgets them); with the local prior in the loss they keep what the global head knew."""
    x, y = blobs(600)
    w0, b0, _ = train_head(x, y, np.zeros((12, 4), np.float32), np.zeros(4, np.float32),
                           HeadTraining(epochs=100, prior_adjust=False))
    seen = y < 2
    unseen = ~seen
    assert accuracy(x[unseen], y[unseen], w0, b0) > 0.9
    plain, pb, _ = train_head(x[seen], y[seen], w0, b0, HeadTraining(epochs=100, prior_adjust=False))
    adj, ab, m = train_head(x[seen], y[seen], w0, b0, HeadTraining(epochs=100, prior_adjust=True))
    assert accuracy(x[unseen], y[unseen], adj, ab) > accuracy(x[unseen], y[unseen], plain, pb) + 0.1
    assert accuracy(x[unseen], y[unseen], adj, ab) > 0.85
    assert np.allclose(adj[:, 2:], w0[:, 2:], atol=1e-3)  # no gradient reached the absent classes
    assert m["local_top1_after"] > 0.9


def test_barcode_plus_weight_step_labels_the_insertion_and_nothing_else_does() -> None:
    store = SampleStore(cap=100)
    lab = AutoLabeler(store, ["empty", "111", "222"], pre_s=0.5, confirm_s=1.0)
    e = np.ones(3, np.float32)
    for i in range(5):  # approach: kept as the insertion's pre-roll
        lab.update(i * 0.1, e * i, [], 0.0, "m", motion=9.0)
    lab.update(0.5, e, ["222"], 0.0, "m", motion=9.0)  # read
    lab.update(0.6, e, [], 10.0, "m", motion=9.0)
    lab.update(0.7, e, [], 80.0, "m", motion=9.0)  # weight step: confirmed
    x, y = store.arrays()
    assert lab.confirmed == 1 and set(y.tolist()) == {2} and 3 <= len(y) <= 8
    n = len(store)
    lab.update(2.0, e, ["111"], 0.0, "m", motion=9.0)  # a scan never put in the cart
    lab.update(4.0, e, [], 0.0, "m", motion=9.0)  # ... timed out
    lab.update(5.0, e, ["999"], 0.0, "m", motion=9.0)  # a code the model has no class for
    lab.update(5.1, e, [], 90.0, "m", motion=9.0)
    lab.update(6.0, e, ["111"], 0.0, "m", motion=9.0)  # two codes in one insertion
    lab.update(6.1, e, ["222"], 0.0, "m", motion=9.0)
    lab.update(6.2, e, [], 90.0, "m", motion=9.0)
    assert len(store) == n and lab.discarded == 3
    for i in range(10):  # a still cart: "no product" samples, one per `empty_every` frames of a run
        lab.update(10 + i * 0.1, e, [], 0.0, "m", motion=0.5)
    assert store.arrays()[1].tolist().count(0) == 4  # frames 2..10 of the run are still, 1 in 2 kept
    for i in range(6):  # sensor noise: single still frames between moving ones never count
        lab.update(12 + i * 0.1, e, [], 0.0, "m", motion=0.5 if i % 2 else 9.0)
    assert store.arrays()[1].tolist().count(0) == 4
    store.add("m2", [e], 1)  # another embedding space: old embeddings are dropped
    assert len(store) == 1 and store.space == "m2"


W0, B0 = np.ones((12, 4), np.float32), np.zeros(4, np.float32)
RULES = AggregationRules(max_samples=1000, max_delta_norm=5.0, clip_factor=2.0)


@pytest.mark.parametrize("arrays,n,why", [
    ([W0], 10, "1 arrays"),
    ([W0, B0, B0], 10, "3 arrays"),
    ([W0[:, :3], B0], 10, "shapes"),
    ([W0.astype(np.int32), B0], 10, "dtype"),
    ([np.where(np.eye(12, 4) > 0, np.nan, W0), B0], 10, "non-finite"),
    ([W0, np.full(4, np.inf, np.float32)], 10, "non-finite"),
    ([W0, B0], 0, "sample count"),
    ([W0, B0], 10**6, "sample count"),
    ([W0 * 1e4, B0], 10, "huge update"),
])
def test_bad_updates_are_rejected_with_the_reason(arrays, n, why) -> None:
    update, reason = check_update("d", arrays, n, W0, B0, RULES)
    assert update is None and why in reason


def test_fedavg_weights_by_samples_and_bounds_a_loud_update() -> None:
    a = Update("a", W0 + 1.0, B0, 100)
    b = Update("b", W0 - 1.0, B0, 300)
    w, _, info = fedavg([a, b], W0, B0, AggregationRules(clip_factor=0))
    np.testing.assert_allclose(w, W0 + (100 - 300) / 400)  # sample-weighted mean of the changes
    assert info["clipped"] == []
    loud = Update("loud", W0 + 4.0, B0, 100)
    w, _, info = fedavg([a, Update("c", W0 + 1.0, B0, 100), loud], W0, B0, RULES)
    assert info["clipped"] == ["loud"]  # 4x the median change, clipped to 2x
    np.testing.assert_allclose(w, W0 + (1 + 1 + 2) / 3, rtol=1e-5)


def test_onnx_head_surgery_keeps_the_logits_and_exposes_the_embedding() -> None:
    import onnx

    from flywheel.fleet.bootstrap import INPUT_HW, build_classifier_onnx
    from flywheel.learner.onnx_head import expose_embedding, read_head, with_head
    from flywheel.learner.onnx_tools import onnx_session

    model = onnx.load_from_string(build_classifier_onnx(["none", "1", "2"], seed=3))
    x = np.random.default_rng(0).random((5, 3, *INPUT_HW), dtype=np.float32)
    before = onnx_session(model.SerializeToString()).run(None, {"x": x[:1]})
    expose_embedding(model)
    assert [o.name for o in model.graph.output] == [model.graph.output[0].name, "embedding"]
    logits, emb = onnx_session(model.SerializeToString()).run(None, {"x": x[:1]})
    np.testing.assert_array_equal(logits, before[0])  # additive: the first output is unchanged
    w, b = read_head(model)
    np.testing.assert_allclose(emb @ w + b, logits, atol=1e-5)
    w2, b2 = w * -2.0, b + 1.0
    new = with_head(model, w2, b2)
    logits2, emb2 = onnx_session(new.SerializeToString()).run(None, {"x": x[:1]})
    np.testing.assert_allclose(logits2, emb2 @ w2 + b2, atol=1e-5)
    np.testing.assert_array_equal(emb2, emb)
    with pytest.raises(ValueError, match="head shape"):
        with_head(model, w[:, :2], b[:2])


def _new_backbone(model, gain: float):
    """The same graph with a learned-looking layer before the head (a per-feature gain): what a
    retrained backbone is to the digest."""
    from onnx import helper, numpy_helper

    from flywheel.learner.onnx_head import _final_gemm

    head = _final_gemm(model.graph)
    d = next(t for t in model.graph.initializer if t.name == head.input[1]).dims[0]
    model.graph.initializer.append(numpy_helper.from_array(np.full((d,), gain, np.float32), "G"))
    model.graph.node.insert(len(model.graph.node) - 1, helper.make_node("Mul", [head.input[0], "G"], ["fg"]))
    _final_gemm(model.graph).input[0] = "fg"
    return model


def test_device_samples_survive_a_new_head_and_are_dropped_for_a_new_backbone(tmp_path) -> None:
    """The promotion of a federated candidate (same backbone, new head) keeps the device's samples;
    a model with another backbone starts its sample store afresh. Real ONNX models in real agent
    slots, read by the device's DeviceModel and FederatedLearner."""
    from types import SimpleNamespace

    import onnx

    from edge_agent.config import FederatedConfig
    from edge_agent.contract.federated import BACKBONE_METADATA, embedding_space
    from edge_agent.federated.runtime import FederatedLearner
    from edge_agent.lake import Lake
    from edge_agent.model import DeviceModel
    from flywheel.fleet.bootstrap import INPUT_HW, build_classifier_onnx, install_model_slot
    from flywheel.learner.onnx_head import backbone_digest, expose_embedding, read_head, with_head

    labels = ["none", "1", "2"]
    prod = expose_embedding(onnx.load_from_string(build_classifier_onnx(labels, seed=3)))
    w, b = read_head(prod)
    candidate = with_head(prod, w * 0.5, b + 1.0)  # what a federated round registers
    retrained = expose_embedding(_new_backbone(onnx.load_from_string(build_classifier_onnx(labels, seed=3)),
                                               2.0))
    assert backbone_digest(prod) == backbone_digest(candidate) != backbone_digest(retrained)

    (tmp_path / "root.json").write_bytes(b"{}")  # never read: the participant is not started
    learner = FederatedLearner(FederatedConfig(channel="stable", trusted_root=str(tmp_path / "root.json"),
                                               state_dir=str(tmp_path / "fed")),
                               device_id="d1", store_id="A", lake=Lake.at_path(tmp_path / "lake"))
    image = np.full((*INPUT_HW, 3), 90, np.uint8)
    still = SimpleNamespace(barcodes=[], weight_delta_g=0.0, motion=0.5)  # an empty, still cart
    t = [0.0]

    def run(version: str, model, frames: int) -> DeviceModel:
        install_model_slot(tmp_path / version, labels, version=version, onnx_bytes=model.SerializeToString())
        device = DeviceModel(tmp_path / version)
        for _ in range(frames):
            t[0] += 0.1
            learner.observe(device, device.predict(image), still, t[0])
        return device

    first = run("prod-1", prod, 10)
    assert first.metadata[BACKBONE_METADATA] == backbone_digest(prod)  # stamped by the cloud, read on device
    kept = len(learner.store)
    assert kept == 4 and learner.space == embedding_space(backbone_digest(prod), labels)
    run("fed-1", candidate, 10)  # promoted over the air: the head changed, the embeddings did not
    assert len(learner.store) == kept + 5 and learner.space == embedding_space(backbone_digest(prod), labels)
    run("cls-2", retrained, 4)  # a new backbone: the old embeddings mean nothing to it
    assert learner.space == embedding_space(backbone_digest(retrained), labels)
    assert len(learner.store) == 2 and learner.store.space == learner.space


def test_device_key_is_made_once_private_and_the_fleet_register_refuses_unknown_ids(tmp_path) -> None:
    import os

    from edge_agent.contract.federated import join_message
    from edge_agent.federated.identity import DeviceKey
    from edge_agent.lake import Lake
    from flywheel.federated.devices import register_device, registered_key, verify

    key = DeviceKey.load_or_create(tmp_path / "fed" / "device.key")
    assert os.stat(tmp_path / "fed" / "device.key").st_mode & 0o777 == 0o600
    again = DeviceKey.load_or_create(tmp_path / "fed" / "device.key")
    assert again.public_bytes == key.public_bytes  # a restart keeps the device's identity
    lake = Lake.at_path(tmp_path / "lake")
    register_device(lake, "cart-1", key.public_bytes)
    assert registered_key(lake, "cart-1") == key.public_bytes
    assert registered_key(lake, "cart-2") is None and registered_key(lake, "../cart-1") is None
    props = {"device_id": "cart-1", "n_samples": 40}
    msg = join_message(3, "n0nce", props)
    sig = key.sign(msg)
    assert verify(key.public_bytes, sig, msg)
    assert not verify(key.public_bytes, sig, join_message(3, "other", props))  # another round's nonce
    assert not verify(key.public_bytes, sig, join_message(3, "n0nce", {**props, "n_samples": 41}))
    assert not verify(DeviceKey.generate().public_bytes, sig, msg) and not verify(key.public_bytes, "x", msg)
