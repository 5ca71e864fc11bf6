"""The federated loop in Dagster, end to end on real parts: a trained production model (YOLO, ONNX
with its embedding output), a simulated fleet of real agents in "updates" mode whose Flower clients
join the `federated_round` asset's server over 127.0.0.1, the candidate through the same evaluation,
blocking gate and TUF release. A coordinated poison (a majority of rogue devices) gets past the
norm bound, and the gate stops it before any release."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_agent.federated.client import DeviceIdentity, Participant, make_client
from edge_agent.federated.samples import SampleStore
from flywheel.learner import registry

N_CARTS = 3


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    """A small trained classifier registered, evaluated, gated and made production."""
    from edge_agent.lake import Lake
    from flywheel.learner.config import DatasetSpec, GateRules, TrainConfig
    from flywheel.learner.pipeline import (
        SimSources,
        build_dataset,
        evaluate_candidate,
        gate_candidate,
        import_from_simulator,
    )
    from flywheel.learner.train import TrainRequest, run_training

    root = tmp_path_factory.mktemp("fed-lake")
    lake = Lake.at_path(root / "lake")
    import_from_simulator(lake, SimSources(n_per_sku=4, n_test=40, n_insertions=0))
    ds, _ = build_dataset(lake, DatasetSpec())
    # the federated head fine-tunes a one-stage model (register_candidate carries no detector)
    cfg = TrainConfig(epochs=2, imgsz=64, num_cpus=1, roi=None)
    run_training(TrainRequest(lake.uri, None, ds.version, cfg, "cls-prod-0", rules=GateRules()))
    evaluate_candidate(lake, "cls-prod-0")
    # bootstrap: no production to beat; latency is this shared machine's load, not the model's
    assert gate_candidate(lake, "cls-prod-0", GateRules(latency_budget_ms=1e9)).passed
    registry.bootstrap_production(lake, "cls-prod-0")
    return root


def rogue(lake, i: int, w_bad: np.ndarray, b_bad: np.ndarray, dim: int, space: str):
    """A registered device, compromised: it passes selection and authentication (samples in the
    base model's embedding space, its own registered key) and sends a poisoned head: every frame
    becomes one product, within the norm bound."""
    from flywheel.federated.devices import register_device

    s = SampleStore()
    s.add(space, [np.zeros(dim, np.float32)] * 40, 0)
    identity = DeviceIdentity(f"rogue-{i}", "A", "A")
    register_device(lake, identity.device_id, identity.key.public_bytes)

    def factory():
        client = make_client(identity, s)
        client._fit = lambda parameters, config: ([w_bad, b_bad], 500, {})
        return client

    return factory


def run_job(lake_res, signer, address: str, **round_cfg):
    import dagster as dg

    import assets.federated
    from jobs.federated import federated_round_job
    from resources.lineage import LakeRefIOManager

    defs = dg.Definitions(
        assets=dg.load_assets_from_modules([assets.federated]),
        asset_checks=dg.load_asset_checks_from_modules([assets.federated]),
        jobs=[federated_round_job],
        resources={"lake": lake_res, "ref_io_manager": LakeRefIOManager(lake=lake_res),
                   "signer": signer})
    return defs.resolve_job_def("federated_round_job").execute_in_process(
        run_config={"ops": {"federated_round": {"config": {
            "address": address, "min_samples": 5, "connect_window_s": 30, "fit_timeout_s": 60,
            **round_cfg}}}},
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


@pytest.mark.slow
def test_federated_round_in_dagster_releases_through_the_gate_and_blocks_a_poison(
        production: Path, tmp_path: Path) -> None:
    from edge_agent.federated.announce import RoundAnnouncements
    from flywheel.federated.candidate import base_head, embedding_space_of
    from flywheel.federated.server import free_address
    from flywheel.fleet.federated import FederatedFleet
    from flywheel.release.keys import keygen, load_keys
    from flywheel.release.publish import current_channel
    from flywheel.release.repository import open_channel
    from resources.lake import LocalLakeResource
    from resources.release import LocalReleaseSigner

    lake_res = LocalLakeResource(root=str(production / "lake"))
    lake = lake_res.lake()
    keygen(tmp_path / "keys")
    signer = LocalReleaseSigner(keys_dir=str(tmp_path / "keys"), create_missing=False)
    address = free_address()

    # too few devices: nothing is connected, the round is skipped with the reason
    skipped = run_job(lake_res, signer, address, connect_window_s=1.0)
    assert skipped.success
    obs = [e for e in skipped.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    why = obs[0].event_specific_data.asset_observation.metadata["skipped"].value
    assert why == "too few devices: 0 eligible of 0 connected, need 2"
    assert not registry.read_production(lake).model_id.startswith("fed-")

    # the skipped run opened the channel and announced its round; carts trust the channel's root
    root = lake.get("releases/stable/metadata/1.root.json")
    with FederatedFleet(lake, "stable", root, carts=N_CARTS, retry_s=0.3) as fleet:
        fleet.drive(0.5)
        assert all(n >= 5 for n in fleet.samples().values()), fleet.samples()
        result = run_job(lake_res, signer, address, expected_devices=N_CARTS)
        mat = result.asset_materializations_for_node("federated_round")[0].metadata
        assert mat["accepted"].value == N_CARTS and mat["skipped"].value == "no"
        assert mat["round_id"].value == 2  # announced, signed, in the channel the carts follow
        assert 0 < mat["bytes_per_device"].value < 400_000  # a head, not clips
        candidate = mat["model_id"].value
        card = registry.read_card(lake, candidate)
        assert card.lineage.parent_model == "cls-prod-0" and card.onnx_validation.passed
        gate = registry.read_gate(lake, candidate)  # the Learner's gate, on the Learner's evaluation
        assert gate.production_id == "cls-prod-0"
        channel = current_channel(open_channel(lake, "stable", load_keys(tmp_path / "keys")))
        if gate.passed:  # the same TUF release as a trained candidate
            assert result.success and channel.release.model_id == candidate
        else:  # blocked: the blocking check stops the run before the release asset
            assert channel is None or channel.release.model_id != candidate

        # a coordinated poison: four rogue devices outvote three honest ones
        production_id = registry.production_model_id(lake)
        w0, b0 = base_head(lake, production_id)
        w_bad, b_bad = np.zeros_like(w0), np.full_like(b0, -5.0)
        b_bad[1] = 5.0  # every frame: class 1
        # rogue devices hold the channel's root like any cart: they read the signed announcement,
        # its server and TLS CA (public: TLS authenticates the server, the gate judges updates)
        rogues = []
        for i in range(4):
            ann = RoundAnnouncements(lake, "stable", root, tmp_path / f"rogue-{i}", check_s=0.3)
            rogues.append(Participant("", rogue(lake, i, w_bad, b_bad, w0.shape[0],
                                                embedding_space_of(lake, production_id)),
                                      retry_s=0.3, announcements=ann).start())
        try:
            poisoned = run_job(lake_res, signer, address, expected_devices=N_CARTS + 4)
        finally:
            for r in rogues:
                r.stop()
    mat = poisoned.asset_materializations_for_node("federated_round")[0].metadata
    assert mat["accepted"].value == N_CARTS + 4  # aggregation let it through (within the bound) ...
    bad = mat["model_id"].value
    verdict = registry.read_gate(lake, bad)
    assert not verdict.passed and any("target_metric" in r for r in verdict.reasons)  # the gate did
    assert not poisoned.success  # the blocking check failed the run: the release never ran
    assert "federated_release" not in {m.asset_key.to_user_string()
                                       for m in poisoned.get_asset_materialization_events()
                                       for m in [m.materialization]}
    after = current_channel(open_channel(lake, "stable", load_keys(tmp_path / "keys")))
    assert after is None or after.release.model_id != bad
    assert registry.production_model_id(lake) == production_id


@pytest.mark.slow
def test_weights_registered_as_a_candidate_keep_the_backbone_key_of_what_they_embed(
        production: Path, tmp_path: Path) -> None:
    """candidate.register_weights (the centralised fine-tune's way into the registry): the same
    weights exported again keep production's backbone digest and embedding space (the export is
    deterministic, so devices keep their samples), new weights get a new one."""
    import torch

    from edge_agent.lake import Lake
    from flywheel.federated.candidate import embedding_space_of, register_weights

    lake = Lake.at_path(production / "lake")
    weights = registry.fetch_file(lake, "cls-prod-0", "weights.pt", tmp_path)
    same = register_weights(lake, "cls-prod-0", "cls-same-1", weights, {"note": "unchanged"})
    assert same.onnx_validation.passed and same.lineage.parent_model == "cls-prod-0"
    assert embedding_space_of(lake, "cls-same-1") == embedding_space_of(lake, "cls-prod-0")
    ckpt = torch.load(weights, map_location="cpu", weights_only=False)
    net = ckpt.get("ema") or ckpt["model"]
    with torch.no_grad():
        next(net.parameters()).mul_(1.5)  # the first conv: a changed backbone
    torch.save(ckpt, tmp_path / "tuned.pt")
    tuned = register_weights(lake, "cls-prod-0", "cls-tuned-1", tmp_path / "tuned.pt", {"note": "x1.5"})
    assert tuned.onnx_validation.passed
    assert embedding_space_of(lake, "cls-tuned-1") != embedding_space_of(lake, "cls-prod-0")


def _two_stage_copy(lake, base_id: str, model_id: str) -> str:
    """`base_id` registered again as a two-stage model: its classifier as the crop classifier, a
    tiny real ONNX detector (tests.support.ota) with its golden pairs, the card's two_stage recipe."""
    import hashlib
    import io
    import json

    import onnxruntime as ort

    from flywheel.learner.config import RoiConfig, TrainConfig
    from flywheel.learner.documents import ModelCardV1
    from flywheel.learner.train import device_model
    from flywheel.learner.two_stage import preprocessing_doc
    from tests.support.ota import DETECTOR_HW, onnx_detector

    card = registry.read_card(lake, base_id)
    det = onnx_detector(3)
    golden = dict(np.load(io.BytesIO(lake.get(registry.key(base_id, "golden.npz")))))
    x = np.random.default_rng(0).random((2, 3, *DETECTOR_HW), dtype=np.float32)
    sess = ort.InferenceSession(det, providers=["CPUExecutionProvider"])
    golden["detector_inputs"] = x
    golden["detector_expected"] = np.concatenate([sess.run(None, {"images": xi[None]})[0] for xi in x])
    buf = io.BytesIO()
    np.savez(buf, **golden)
    blobs = {"weights.pt": lake.get(registry.key(base_id, "weights.pt")),
             "model.onnx": lake.get(registry.key(base_id, "model.onnx")),
             "golden.npz": buf.getvalue(), "detector.onnx": det, "detector.pt": b"detector checkpoint"}
    files = {}
    for name, data in blobs.items():
        lake.put(registry.key(model_id, name), data)
        files[name] = {"key": registry.key(model_id, name), "bytes": len(data),
                       "sha256": hashlib.sha256(data).hexdigest()}
    roi = RoiConfig(crop=card.imgsz, det_imgsz=DETECTOR_HW[0])
    doc = json.loads(card.model_dump_json(by_alias=True))
    doc.update(model_id=model_id, files=files)
    doc["preprocessing"]["two_stage"] = preprocessing_doc(TrainConfig(imgsz=card.imgsz, roi=roi))["two_stage"]
    two = ModelCardV1.model_validate(doc)
    registry.write_device_model(lake, device_model(two))
    registry.write_card(lake, two)
    return model_id


@pytest.mark.slow
def test_a_federated_candidate_of_a_two_stage_model_carries_its_detector_into_the_release(
        production: Path, tmp_path: Path) -> None:
    """register_candidate on a two-stage base: the detector's files come along byte for byte (same
    sha256), the device card names them, the golden file keeps the detector's pairs, the release
    signs the detector with the new classifier, and the device runs both from the slot."""
    import hashlib
    import io

    from edge_agent.contract.release import RolloutStage
    from edge_agent.lake import Lake
    from edge_agent.model import DeviceModel
    from flywheel.federated.candidate import base_head, register_candidate
    from flywheel.release.keys import keygen, load_keys
    from flywheel.release.publish import publish_release, registry_files
    from flywheel.release.repository import open_channel

    lake = Lake.at_path(production / "lake")
    base = _two_stage_copy(lake, "cls-prod-0", "cls-two-0")
    w0, b0 = base_head(lake, base)
    card = register_candidate(lake, base, w0 * 0.5, b0 + 0.1, {"round_id": 7})
    parent = registry.read_card(lake, base)
    assert card.onnx_validation.passed and card.lineage.parent_model == base
    for name in ("detector.onnx", "detector.pt"):
        assert card.files[name].sha256 == parent.files[name].sha256
    assert card.files["model.onnx"].sha256 != parent.files["model.onnx"].sha256
    device = registry.read_device_model(lake, card.model_id)
    assert device.detector == registry.read_device_model(lake, base).detector
    golden = np.load(io.BytesIO(lake.get(registry.key(card.model_id, "golden.npz"))))
    parent_golden = np.load(io.BytesIO(lake.get(registry.key(base, "golden.npz"))))
    assert np.array_equal(golden["detector_expected"], parent_golden["detector_expected"])
    assert not np.array_equal(golden["expected"], parent_golden["expected"])  # the new head's

    keygen(tmp_path / "keys")
    repo = open_channel(lake, "two", load_keys(tmp_path / "keys"))
    files = registry_files(lake, card.model_id)
    channel = publish_release(repo, card.model_id, files, RolloutStage(stage="full", percent=100))
    assert "detector.onnx" in channel.release.files
    assert hashlib.sha256(files["detector.onnx"]).hexdigest() == device.detector.sha256

    slot = registry.write_slot(lake, card.model_id, tmp_path / "slot")
    model = DeviceModel(slot)
    assert model.detector is not None
    pred = model.predict(np.random.default_rng(1).integers(0, 255, (120, 160, 3), np.uint8))
    assert pred.embedding is not None and pred.embedding.shape[-1] == w0.shape[0]
