"""The agent with its OTA updater: housekeeping's check installs a release through the real TUF
client, the agent hot-swaps to it, feeds probation with live frames, commits, and its status
reports (V2) carry the OTA state and the health figures the release gates read. A model that
crashes on probation is rolled back while the agent keeps running."""

from __future__ import annotations

from edge_agent.contract import parse_status_report
from edge_agent.contract.release import RolloutStage
from edge_agent.contract.schemas import StatusReportV2
from edge_agent.runtime import model_loader
from edge_agent.triggers import build_rule_set
from flywheel.release.keys import keygen, load_keys
from flywheel.release.publish import publish_release
from flywheel.release.repository import open_channel
from tests.edge_agent.conftest import EAN_A, scripted_frames
from tests.support.ota import release_files


def _setup(tmp_path, lake, model_dir, **cfg):
    from edge_agent.ota.updater import OtaConfig, OtaUpdater

    keygen(tmp_path / "keys")
    repo = open_channel(lake, "stable", load_keys(tmp_path / "keys"))
    root = lake.get("releases/stable/metadata/1.root.json")
    updater = OtaUpdater(lake, OtaConfig(device_id="cart-test-01", channel="stable",
                                         model_dir=model_dir, state_dir=tmp_path / "ota",
                                         trusted_root=root, **{"probation_frames": 10, **cfg}))
    return repo, updater


def test_agent_installs_probes_commits_and_reports(tmp_path, local_lake, model_dir, make_agent):
    repo, updater = _setup(tmp_path, local_lake, model_dir)
    rules = build_rule_set("t1", {"code": "barcode"})
    agent = make_agent(local_lake, rules=rules, model_loader=model_loader(model_dir, threads=1),
                       start=False)
    agent.ota = updater
    assert agent.check_ota() == "failed"  # an empty channel: reported, the factory model runs on
    assert "channel.json" in updater.rec.detail and agent.model.version == "test-model-1"
    publish_release(repo, "cls-1", release_files(1, "m-1"), RolloutStage(stage="full", percent=100))
    assert agent.check_ota() == "probing"
    assert agent.model.version == "m-1"  # hot-swapped to the new slot, on probation
    frames = list(scripted_frames(12, {range(2, 10): {"barcode": EAN_A, "weight": 400}}))
    for frame in frames:
        agent.process(frame)
    # the same figures computed independently: the new model and the barcode reader on each frame
    from edge_agent.model import DeviceModel
    from edge_agent.triggers.signals import BarcodeReader

    m, reader = DeviceModel(model_dir), BarcodeReader()
    preds = [m.predict(f.image) for f in frames]
    reads = [reader.read(f.image) for f in frames]
    checked = [(p.label, r[0].text) for p, r in zip(preds, reads, strict=True) if r]  # "empty" too
    assert updater.rec.probe_frames == 12
    assert agent.check_ota() == "active"
    report = parse_status_report(agent.status_document())
    assert isinstance(report, StatusReportV2)
    assert report.ota.state == "active" and report.ota.release_id.endswith("cls-1")
    # a status report went out at each OTA state change; their windows add up
    sent = [parse_status_report(local_lake.get(o.key)) for o in local_lake.list("landing/status")]
    assert [r.ota.state for r in sent] == ["failed", "downloading", "verified", "swapping",
                                            "probing", "active"]
    h = _summed([*sent, report])
    assert sum(bool(r) for r in reads) == 8  # real EAN-13 reads on the barcode frames
    assert h.barcode_checked == len(checked)
    assert h.barcode_agree == sum(label == code for label, code in checked)
    assert h.predictions == sum(p.label is not None for p in preds)
    assert h.low_confidence == sum(p.confidence < 0.5 for p in preds)
    assert h.crashes == 0 and h.restarts == 0


def _summed(reports):
    from edge_agent.contract.schemas import HealthFigures

    fields = HealthFigures.model_fields
    return HealthFigures(**{k: sum(getattr(r.health, k) for r in reports) for k in fields})


class _Crashing:
    version = "m-1"

    def predict(self, image):
        raise RuntimeError("segfault in the new model")


def test_agent_rolls_back_a_model_that_crashes_on_probation(tmp_path, local_lake, model_dir,
                                                          make_agent):
    repo, updater = _setup(tmp_path, local_lake, model_dir)
    agent = make_agent(local_lake, model_loader=model_loader(model_dir, threads=1), start=False)
    agent.ota = updater
    publish_release(repo, "cls-1", release_files(1, "m-1"), RolloutStage(stage="full", percent=100))
    assert agent.check_ota() == "probing"
    good = agent.model
    agent.model = _Crashing()  # the new model faults on live frames
    for frame in scripted_frames(3):
        assert agent.process(frame) == []  # the loop survives every fault
    agent.model = good
    assert agent.check_ota() == "rolled_back"
    assert agent.model.version == "test-model-1"  # the previous slot, hot-swapped back
    report = parse_status_report(agent.status_document())
    sent = [parse_status_report(local_lake.get(o.key)) for o in local_lake.list("landing/status")]
    assert report.ota.state == "rolled_back" and _summed([*sent, report]).crashes == 3


def test_agent_built_from_config_follows_the_channel(tmp_path, local_lake, model_dir):
    """`[ota]` in agent.toml: the agent `edge-agent run` builds carries the updater, provisioned
    with the channel's root; it installs, probes on frames and commits."""
    from edge_agent.config import load_config
    from edge_agent.runtime import build_agent
    from tests.edge_agent.test_agent import write_config

    keygen(tmp_path / "keys")
    repo = open_channel(local_lake, "stable", load_keys(tmp_path / "keys"))
    (tmp_path / "root.json").write_bytes(local_lake.get("releases/stable/metadata/1.root.json"))
    publish_release(repo, "cls-1", release_files(1, "m-1"), RolloutStage(stage="full", percent=100))
    path = write_config(tmp_path, model_dir, tmp_path / "lake")
    path.write_text(path.read_text() + '[ota]\nchannel = "stable"\ntrusted_root = "root.json"\n'
                    'probation_frames = 5\ncheck_s = 60\n')
    agent = build_agent(load_config(path), lake=local_lake)
    assert agent.ota is not None and agent.ota_check_s == 60
    assert agent.check_ota() == "probing" and agent.model.version == "m-1"
    for frame in scripted_frames(5):
        agent.process(frame)
    assert agent.check_ota() == "active"
    assert parse_status_report(agent.status_document()).ota.state == "active"
