"""Signed round announcements: a device joins a round only on the cloud's signed word.

Real release keys (Ed25519, `flywheel release` keygen), the channel's real TUF repository in a lake,
python-tuf on the device. Refused, each with its reason: an announcement signed by other keys (an
attacker's repository at the channel's path), bytes swapped under a signed target, one signed for
another channel, an expired one, a replayed one (a round this device already joined). Over real
Flower: devices join the announced server over TLS (the announcement carries the round's CA); a
server that sends another base head than the announced one gets nothing from them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from edge_agent.contract.federated import ROUND_TARGET
from edge_agent.federated.announce import RoundAnnouncements
from edge_agent.lake import Lake
from flywheel.federated.announce import announce_round
from flywheel.federated.tls import round_certificates
from flywheel.release.keys import keygen, load_keys
from flywheel.release.repository import open_channel

D, K, MODEL = 16, 4, "prod-1"
W0, B0 = np.random.default_rng(1).normal(size=(D, K)).astype(np.float32), np.zeros(K, np.float32)


def channel(lake: Lake, keys_dir: Path, name: str = "stable"):
    keygen(keys_dir)
    return open_channel(lake, name, load_keys(keys_dir))


def device(lake: Lake, tmp: Path, name: str = "stable", root: bytes | None = None) -> RoundAnnouncements:
    root = root or lake.get(f"releases/{name}/metadata/1.root.json")
    return RoundAnnouncements(lake, name, root, tmp / "device", check_s=0.0)


def test_a_signed_announcement_is_accepted_once_and_refused_when_expired(tmp_path: Path) -> None:
    lake = Lake.at_path(tmp_path / "lake")
    repo = channel(lake, tmp_path / "keys")
    dev = device(lake, tmp_path)
    assert dev.check().reason == "no round announced in channel 'stable'"
    ca = round_certificates("127.0.0.1:9999", 120).ca_pem
    ann = announce_round(repo, server="127.0.0.1:9999", base_model=MODEL, w0=W0, b0=B0,
                         cohorts=("A",), open_s=120, tls_ca=ca)
    got = dev.check().announcement
    assert got == ann and got.round_id == 1 and got.server == "127.0.0.1:9999"
    assert got.tls_ca.encode() == ca  # the link's trust anchor, under the channel's signature
    later = datetime.now(UTC) + timedelta(seconds=121)
    assert dev.check(later).reason.startswith("round 1 announcement expired at ")
    dev.mark_joined(1)
    assert dev.check().reason == "round 1 replayed: this device already joined round 1"
    # a restarted device remembers (state on disk); the next round is new
    assert device(lake, tmp_path).check().announcement is None
    assert announce_round(repo, server="127.0.0.1:9999", base_model=MODEL, w0=W0, b0=B0,
                          tls_ca=ca).round_id == 2
    assert dev.check().announcement.round_id == 2
    # a round announced without a TLS CA (a plaintext link): refused unless the config allows it
    announce_round(repo, server="127.0.0.1:9999", base_model=MODEL, w0=W0, b0=B0)
    assert dev.check().reason == ("round 3 announced without a TLS CA: this device sends updates only "
                                  "over TLS (federated.require_tls)")
    lax = RoundAnnouncements(lake, "stable", lake.get("releases/stable/metadata/1.root.json"),
                             tmp_path / "lax", check_s=0.0, require_tls=False)
    assert lax.check().announcement.round_id == 3


def test_announcements_not_signed_by_the_channels_keys_are_refused(tmp_path: Path) -> None:
    lake = Lake.at_path(tmp_path / "lake")
    repo = channel(lake, tmp_path / "keys")
    root = lake.get("releases/stable/metadata/1.root.json")
    announce_round(repo, server="127.0.0.1:9999", base_model=MODEL, w0=W0, b0=B0)

    # 1. bytes swapped under the signed target (the lake is writable, the keys are not)
    info = repo.targets.signed.targets[ROUND_TARGET]
    ann_key = repo.target_key(ROUND_TARGET, info.hashes["sha256"])
    lake.put(ann_key, lake.get(ann_key).replace(b"127.0.0.1:9999", b"6.6.6.6:9999"))
    v = device(lake, tmp_path / "a", root=root).check()
    assert v.announcement is None and "not what the targets signed" in v.reason

    # 2. an attacker's own repository (own keys) written over the channel's metadata
    evil_lake = Lake.at_path(tmp_path / "evil")
    evil = channel(evil_lake, tmp_path / "evil-keys")
    announce_round(evil, server="6.6.6.6:9999", base_model=MODEL, w0=W0, b0=B0)
    for obj in evil_lake.list("releases/stable"):
        lake.put(obj.key, evil_lake.get(obj.key))
    v = device(lake, tmp_path / "b", root=root).check()
    assert v.announcement is None and "not signed by the channel's keys" in v.reason

    # 3. signed with the same keys, but for another channel: refused by name
    other = Lake.at_path(tmp_path / "other")
    repo_b = open_channel(other, "beta", load_keys(tmp_path / "keys"))
    announce_round(repo_b, server="127.0.0.1:9999", base_model=MODEL, w0=W0, b0=B0)
    for obj in other.list("releases/beta"):
        other.put(obj.key.replace("releases/beta", "releases/stable"), other.get(obj.key))
    v = device(other, tmp_path / "c", root=other.get("releases/beta/metadata/1.root.json")).check()
    assert v.announcement is None and v.reason == ("announcement refused: signed for channel 'beta', "
                                                   "not 'stable'")


@pytest.mark.slow
def test_devices_join_the_announced_round_and_refuse_a_rogue_base_head(tmp_path: Path) -> None:
    from edge_agent.federated.client import Participant, make_client
    from flywheel.federated.server import free_address, run_round
    from flywheel.federated.strategy import RoundConfig
    from tests.federated.test_round import FLEET, registered, store

    lake = Lake.at_path(tmp_path / "lake")
    repo = channel(lake, tmp_path / "keys")
    root = lake.get("releases/stable/metadata/1.root.json")
    address = free_address()
    devices = []
    for i in range(2):
        ann = RoundAnnouncements(lake, "stable", root, tmp_path / f"d{i}", check_s=0.2)
        s = store(40, i)
        p = Participant("", None, retry_s=0.2, announcements=ann)
        identity = registered(f"good-{i}")
        p.client_factory = (lambda p=p, s=s, identity=identity: make_client(
            identity, s, expect=p.joining, on_refusal=p.refused))
        devices.append(p.start())
    cfg = dict(base_model=MODEL, min_devices=2, min_samples=10, expected_devices=2, fit_timeout_s=8)
    tls = round_certificates(address, 120)  # one per round in production; one for both here
    try:
        ann = announce_round(repo, server=address, base_model=MODEL, w0=W0, b0=B0, open_s=60,
                             tls_ca=tls.ca_pem)
        head, report = run_round(address, RoundConfig(round_id=ann.round_id, connect_window_s=20, **cfg),
                                 W0, B0, certificates=tls.certificates, key_of=FLEET.get)
        assert report.accepted == ["good-0", "good-1"] and head is not None

        # the announced server, compromised, hands out another base head: devices train nothing
        ann = announce_round(repo, server=address, base_model=MODEL, w0=W0, b0=B0, open_s=60,
                             tls_ca=tls.ca_pem)
        head, report = run_round(address, RoundConfig(round_id=ann.round_id, connect_window_s=20, **cfg),
                                 W0 * 0, B0 + 1, certificates=tls.certificates, key_of=FLEET.get)
        assert head is None and report.accepted == []
        assert set(report.rejected) == {"good-0", "good-1"}
        assert all("rogue base head" in (p.last_error or "") for p in devices)

        # round 2 is over for them: a server replaying it finds nobody
        _, report = run_round(address, RoundConfig(round_id=ann.round_id, connect_window_s=2, **cfg), W0, B0,
                              certificates=tls.certificates, key_of=FLEET.get)
        assert report.connected == 0
    finally:
        for p in devices:
            p.stop()
