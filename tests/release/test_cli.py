"""`flywheel release ...` in process: keygen, init, publish a registered-looking model, rotate a key in
one command, re-sign the timestamp, ship a rule set; a device follows through the real client."""

from __future__ import annotations

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
    rules = tmp_path / "campaign.toml"
    rules.write_text('version = "campaign-1"\n[[rules]]\nname = "sku"\n'
                     'when = \'campaign("sku:4006381333931")\'\npriority = 1\n')
    assert main(["release", "rules", *common, "--version", "campaign-1", "--file", str(rules)]) == 0
    out = capsys.readouterr().out
    assert "rotated timestamp: root v2" in out and "rules/campaign-1.toml" in out

    repo = open_channel(lake, "stable", load_keys(keys), create=False)
    channel = current_channel(repo)
    assert channel.rule_set == "rules/campaign-1.toml"
    assert b'version = "campaign-1"' in read_target(repo, channel.rule_set)
    device = SimDevice("cart-1", tmp_path / "cart-1")
    device.install_factory()
    up = device.updater(lake, "stable", lake.get("releases/stable/metadata/1.root.json"))
    assert up.check() == "probing" and up.probe() == "active"
    assert device.running_version() == "cls-1"  # device.json names the model id


def test_signed_rule_set_reaches_the_agents_rule_file(tmp_path: Path, keys_dir):
    """A campaign published with `flywheel release rules` lands, verified, in the file the agent's
    RuleSetWatcher watches; a rule set that does not compile is refused before it ships."""
    from edge_agent.contract.release import RolloutStage
    from edge_agent.triggers.rules import RuleSetWatcher, build_rule_set
    from flywheel.release.publish import publish_release, publish_rules
    from flywheel.release.repository import RepositoryError

    lake = Lake.at_path(tmp_path / "lake")
    repo = open_channel(lake, "stable", load_keys(keys_dir))
    publish_release(repo, "cls-1", release_files(1, "m-1"), RolloutStage(stage="full", percent=100))
    with pytest.raises(RepositoryError, match="rule set bad-1"):
        publish_rules(repo, "bad-1", b'version = "bad-1"\n[[rules]]\nname = "x"\nwhen = "motion(("\n')
    publish_rules(repo, "campaign-2", b'version = "campaign-2"\n[[rules]]\nname = "sku"\n'
                                      b'when = \'campaign("sku:4006381333931")\'\n')
    rule_file = tmp_path / "rules.toml"
    rule_file.write_text('version = "factory"\n[[rules]]\nname = "m"\nwhen = "motion"\n')
    watcher = RuleSetWatcher(rule_file, build_rule_set("factory", {"m": "motion"}))
    device = SimDevice("cart-1", tmp_path / "cart-1")
    device.install_factory()
    up = device.updater(lake, "stable", lake.get("releases/stable/metadata/1.root.json"),
                        rules_file=rule_file)
    assert up.check() == "probing"
    new = watcher.poll()
    assert new is not None and new.version == "campaign-2"
    assert [r.name for r in new.rules] == ["sku"]
    assert up.rec.rules_applied == "rules/campaign-2.toml"
