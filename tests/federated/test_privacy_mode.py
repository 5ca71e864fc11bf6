"""upload.mode = "updates": the agent never uploads a clip. Proved on every object the device wrote
(the lake and its own disk), against the same frames in "clips" mode as the control."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config import ConfigError, load_config, parse_config
from edge_agent.contract.layout import LANDING_CLIPS, LANDING_STATUS
from edge_agent.contract.schemas import parse_status_report
from edge_agent.lake import Lake
from edge_agent.runtime import build_agent
from edge_agent.sources import Frame

DEVICE = "cart-A-001"


def install_model(root: Path) -> Path:
    """The bootstrap classifier with its embedding exposed: what a federated device runs."""
    import onnx

    from flywheel.fleet.bootstrap import build_classifier_onnx, install_model_slot
    from flywheel.learner.onnx_head import expose_embedding
    from flywheel.sim import default_world

    world = default_world(0)
    labels = ["none", *(p.ean for p in world.catalog.products)]
    model = expose_embedding(onnx.load_from_string(build_classifier_onnx(labels, background=world.basket)))
    return install_model_slot(root, labels, version="bootstrap-emb", onnx_bytes=model.SerializeToString())


def open_stable_channel(lake_dir: Path, keys_dir: Path) -> bytes:
    """The release channel the device follows (real keys): its root.json, the trust anchor."""
    from flywheel.release.keys import keygen, load_keys
    from flywheel.release.repository import open_channel

    keygen(keys_dir)
    lake = Lake.at_path(lake_dir)
    open_channel(lake, "stable", load_keys(keys_dir))
    return lake.get("releases/stable/metadata/1.root.json")


def write_config(tmp: Path, mode: str, lake_dir: Path) -> Path:
    cfg = tmp / mode / "agent.toml"
    cfg.parent.mkdir(parents=True)
    install_model(tmp / mode / "model")
    (tmp / mode / "root.json").write_bytes(open_stable_channel(lake_dir, tmp / f"keys-{mode}"))
    cfg.write_text(f'''device_id = "{DEVICE}"
store_id = "A"
[source]
url = "unused.mp4"
[model]
dir = "model"
[spool]
dir = "spool"
[upload]
lake = "{lake_dir}"
mode = "{mode}"
[federated]
channel = "stable"
trusted_root = "root.json"
retry_s = 30.0
[capture]
encoders = []
isolation = "thread"
[triggers]
version = "1"
rules = [{{name = "scan", when = "all(motion, barcode)"}}, {{name = "insert", when = "weight_change(50)"}}]
''')
    return cfg


def sim_frames(n: int):
    from datetime import UTC, datetime

    from flywheel.fleet.runner import cart_sim_frames
    from flywheel.sim import default_world

    for sf, t, wall in cart_sim_frames(default_world(0), "A", 0, 0, n, datetime(2026, 1, 5, 9, tzinfo=UTC)):
        d = sf.device
        yield Frame(d.image, t, weight_g=d.weight_g, location=(d.location.aisle, d.location.position_m),
                    wall=wall)


def run(cfg_path: Path, n: int) -> dict:
    agent = build_agent(load_config(cfg_path))
    agent.start()
    for f in sim_frames(n):
        agent.process(f)
    totals = agent.close(drain_timeout=60)
    totals["federated_store"] = len(agent.federated.store) if agent.federated else 0
    return totals


@pytest.mark.slow
def test_updates_mode_writes_no_clip_anywhere(tmp_path: Path) -> None:
    # no round is announced: the device keeps learning and checking quietly
    clips_lake, updates_lake = tmp_path / "lake-clips", tmp_path / "lake-updates"
    control = run(write_config(tmp_path, "clips", clips_lake), 300)
    assert control["uploaded_clips"] > 0  # the same frames do produce clips in "clips" mode
    assert list(Lake.at_path(clips_lake).list(LANDING_CLIPS))

    cfg = write_config(tmp_path, "updates", updates_lake)
    cloud = {o.key for o in Lake.at_path(updates_lake).list("")}  # the channel, written by the cloud
    totals = run(cfg, 300)
    assert totals["captures"] == 0 and totals["uploaded_clips"] == 0 and totals["spooled"] == 0
    assert totals["captures_withheld"] > 0  # rules fired: the frames were simply never kept
    assert totals["federated_samples"] > 0 and totals["federated_store"] > 0  # it learned locally
    lake = Lake.at_path(updates_lake)
    written = [o for o in lake.list("") if o.key not in cloud]
    assert written, "the device reports its status even in updates mode"
    for obj in written:  # every object the device wrote: a status report of its own, nothing else
        assert obj.key.startswith(f"{LANDING_STATUS}/device={DEVICE}/"), obj.key
        report = parse_status_report(lake.get(obj.key))
        assert report.device_id == DEVICE and report.uploaded_clips == 0 and report.captures == 0
        assert obj.size < 16_000  # counters, not pixels
    on_disk = [p for p in (tmp_path / "updates").rglob("*") if p.is_file()]
    spool = [p.name for p in on_disk if "spool" in p.parts]
    assert spool == ["status.json"]  # no clip, sidecar or partial capture on the device either
    assert not [p for p in on_disk if p.suffix in (".mp4", ".h264", ".jpg", ".png", ".npy", ".npz")]


def test_upload_mode_and_federated_server_are_validated() -> None:
    base = {"device_id": "d1", "store_id": "A", "source": {"url": "x.mp4"}, "model": {"dir": "m"},
            "upload": {"lake": "/tmp/lake"}, "triggers": {"version": "1", "rules": [
                {"name": "s", "when": "barcode"}]}}
    assert parse_config(base).upload.mode == "clips"  # the default: the centralised loop
    with pytest.raises(ConfigError, match="upload.mode"):
        parse_config({**base, "upload": {"lake": "/tmp/lake", "mode": "images"}})
    with pytest.raises(ConfigError, match="federated.trusted_root"):  # no unsigned rounds
        parse_config({**base, "federated": {"channel": "stable"}})
    with pytest.raises(ConfigError, match="federated.channel"):
        parse_config({**base, "federated": {"channel": "../x", "trusted_root": "root.json"}})
    cfg = parse_config({**base, "upload": {"lake": "/tmp/lake", "mode": "updates"},
                        "ota": {"channel": "stable", "trusted_root": "root.json"},
                        "federated": {"channel": "stable", "cohort": "gdpr-eu"}})
    assert cfg.upload.mode == "updates" and cfg.federated.cohort == "gdpr-eu"
    assert cfg.federated.trusted_root == "root.json"  # the [ota] trust anchor of the same channel


def test_provisioning_registers_the_key_the_agent_signs_with_and_revocation_refuses_it(
        tmp_path: Path, capsys) -> None:
    """`edge-agent federated-key` prints the key the agent will sign with (made in its state_dir);
    `flywheel federated register` puts it in the fleet's register; `revoke` removes it."""
    import base64

    from edge_agent.cli import main as edge_main
    from edge_agent.federated.runtime import FederatedLearner
    from edge_agent.runtime import _federated
    from flywheel.cli import main as flywheel_main
    from flywheel.federated.devices import registered_key

    lake_dir = tmp_path / "lake"
    cfg_path = write_config(tmp_path, "updates", lake_dir)
    assert edge_main(["federated-key", "--config", str(cfg_path)]) == 0
    device, key = capsys.readouterr().out.split()
    assert device == DEVICE and (tmp_path / "updates" / "federated" / "device.key").exists()
    assert flywheel_main(["federated", "register", "--lake", str(lake_dir), device, key]) == 0
    lake = Lake.at_path(lake_dir)
    assert registered_key(lake, DEVICE) == base64.b64decode(key)
    # the agent's learner signs with that very key
    learner = FederatedLearner(_federated(load_config(cfg_path)), device_id=DEVICE, store_id="A", lake=lake)
    assert learner.public_key == base64.b64decode(key)
    assert flywheel_main(["federated", "register", "--lake", str(lake_dir), device, "bm90IGEga2V5"]) == 2
    assert flywheel_main(["federated", "revoke", "--lake", str(lake_dir), device]) == 0
    assert registered_key(lake, DEVICE) is None
