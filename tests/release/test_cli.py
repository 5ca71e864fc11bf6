"""`flywheel release ...` in process: keygen, init, publish a registered-looking model, rotate a key in
one command, re-sign the timestamp, ship a rule set; a device follows through the real client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.lake import Lake
from flywheel.cli import main
from flywheel.release.keys import load_keys
from flywheel.release.publish import current_channel, read_target
from flywheel.release.repository import open_channel
from tests.support.ota import SimDevice, register_model, release_files


def test_cli_keygen_init_publish_rotate_rules(tmp_path: Path, capsys):
    keys, lake_dir = tmp_path / "keys", tmp_path / "lake"
    lake = Lake.at_path(lake_dir)
    common = ["--lake", str(lake_dir), "--channel", "stable", "--keys", str(keys)]
    assert main(["release", "keygen", "--keys", str(keys)]) == 0
    assert sorted(p.name for p in keys.iterdir()) == ["root.pem", "snapshot.pem", "targets.pem",
                                                      "timestamp.pem"]
    assert (keys / "root.pem").stat().st_mode & 0o077 == 0
    with pytest.raises(FileExistsError):
        main(["release", "keygen", "--keys", str(keys)])
    assert main(["release", "init", *common]) == 0
    register_model(lake, "cls-1", release_files(1, "m-1"))
    assert main(["release", "publish", *common, "--model-id", "cls-1"]) == 0
    old_ts_pem = (keys / "timestamp.pem").read_bytes()
    assert main(["release", "rotate", *common, "--role", "timestamp"]) == 0
    assert (keys / "timestamp.pem").read_bytes() != old_ts_pem
    assert main(["release", "timestamp", *common]) == 0  # signs with the rotated key
    rules = tmp_path / "campaign.json"
    rules.write_text(json.dumps({"version": "campaign-1", "rules": {"sku": "barcode('4006381333931')"}}))
    assert main(["release", "rules", *common, "--version", "campaign-1", "--file", str(rules)]) == 0
    out = capsys.readouterr().out
    assert "rotated timestamp: root v2" in out and "rules/campaign-1.json" in out

    repo = open_channel(lake, "stable", load_keys(keys), create=False)
    channel = current_channel(repo)
    assert channel.rule_set == "rules/campaign-1.json"
    assert json.loads(read_target(repo, channel.rule_set))["version"] == "campaign-1"
    device = SimDevice("cart-1", tmp_path / "cart-1")
    device.install_factory()
    up = device.updater(lake, "stable", lake.get("releases/stable/metadata/1.root.json"))
    assert up.check() == "probing" and up.probe() == "active"
    assert device.running_version() == "m-1"
