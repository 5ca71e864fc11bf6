"""Faults and attacks against real TUF metadata in a real lake (local and SeaweedFS): the device
refuses what TUF does not vouch for, keeps a working model throughout, and takes the good release
once the channel is healthy again."""

from __future__ import annotations

import pytest
from tuf.api.metadata import Metadata

from edge_agent.contract.release import RolloutStage
from edge_agent.ota.fetcher import LakeFetcher
from flywheel.release.keys import generate_key, load_keys
from flywheel.release.publish import publish_release
from flywheel.release.repository import ExpiryConfig
from tests.support.ota import (
    InterruptingLake,
    SimDevice,
    raise_disk_full,
    release_files,
    unreachable_lake,
)

FULL = RolloutStage(stage="full", percent=100)


def ship(repo, seed: int = 1, version: str = "m-1", **kw):
    return publish_release(repo, f"cls-{version}", release_files(seed, version, **kw), FULL)


def install(device: SimDevice, up) -> str:
    """check -> probation on golden frames -> commit."""
    assert up.check() == "probing", up.rec.detail
    return up.probe()


def assert_untouched(device: SimDevice, up, version: str = "factory-0") -> None:
    assert device.running_version() == version
    assert up.status().state == "failed"


def test_happy_path_installs_commits_and_reports(repo, device, trusted_root):
    channel = ship(repo)
    up = device.updater(repo.lake, repo.channel, trusted_root)
    assert install(device, up) == "active"
    assert device.running_version() == "m-1"
    status = up.status()
    assert (status.state, status.release_id) == ("active", channel.release.release_id)
    assert up.check() == "active"  # nothing new: no second install
    assert not list((device.state_dir / "partial").glob("*.part"))


def test_1_wrong_signing_key(repo, device, trusted_root, tmp_path):
    ship(repo)
    evil = _signer(generate_key(tmp_path / "evil", "timestamp"))
    ts = Metadata.from_bytes(repo.lake.get(f"{repo.meta_prefix}/timestamp.json"))
    ts.signed.version += 1
    ts.signatures.clear()
    ts.sign(evil)
    repo.lake.put(f"{repo.meta_prefix}/timestamp.json", ts.to_bytes())
    up = device.updater(repo.lake, repo.channel, trusted_root)
    assert up.check() == "failed"
    assert "UnsignedMetadataError" in up.rec.detail
    assert_untouched(device, up)
    repo.refresh_timestamp()  # the real key re-signs, at a higher version
    assert install(device, device.updater(repo.lake, repo.channel, trusted_root)) == "active"
    assert device.running_version() == "m-1"


def test_2_rollback_to_older_version(repo, device, trusted_root):
    old_ts = repo.lake.get(f"{repo.meta_prefix}/timestamp.json")
    ship(repo)
    up = device.updater(repo.lake, repo.channel, trusted_root)
    assert install(device, up) == "active"
    repo.lake.put(f"{repo.meta_prefix}/timestamp.json", old_ts)  # replay an older, validly signed one
    up = device.updater(repo.lake, repo.channel, trusted_root)
    assert up.check() == "failed"
    assert "version" in up.rec.detail.lower()
    assert device.running_version() == "m-1"  # the newer model stays
    repo.refresh_timestamp()
    assert device.updater(repo.lake, repo.channel, trusted_root).check() == "active"


def test_3_freeze_expired_timestamp(repo, device, trusted_root):
    ship(repo)
    repo.expiry = ExpiryConfig(timestamp_s=-60)  # a frozen mirror serving a stale timestamp
    repo.refresh_timestamp()
    up = device.updater(repo.lake, repo.channel, trusted_root)
    assert up.check() == "failed"
    assert "expired" in up.rec.detail.lower()
    assert_untouched(device, up)
    repo.expiry = ExpiryConfig()
    repo.refresh_timestamp()
    assert install(device, device.updater(repo.lake, repo.channel, trusted_root)) == "active"


def test_4_mix_and_match(repo, device, trusted_root):
    ship(repo, 1, "m-1")
    older_targets = repo.lake.get(f"{repo.meta_prefix}/{repo.targets.signed.version}.targets.json")
    ship(repo, 2, "m-2")
    newest = f"{repo.meta_prefix}/{repo.targets.signed.version}.targets.json"
    good = repo.lake.get(newest)
    repo.lake.put(newest, older_targets)  # snapshot says vN, the file holds a signed vN-1
    up = device.updater(repo.lake, repo.channel, trusted_root)
    assert up.check() == "failed"
    assert "version" in up.rec.detail.lower()
    assert_untouched(device, up)
    repo.lake.put(newest, good)
    assert install(device, device.updater(repo.lake, repo.channel, trusted_root)) == "active"
    assert device.running_version() == "m-2"


def _artifact_key(repo, channel, name: str = "model.onnx") -> tuple[str, int]:
    path = channel.release.files[name]
    info = repo.targets.signed.targets[path]
    return repo.target_key(path, info.hashes["sha256"]), info.length


def test_5_endless_data(repo, device, trusted_root):
    channel = ship(repo, pad_bytes=300_000)
    key, length = _artifact_key(repo, channel)
    good = repo.lake.get(key)
    repo.lake.put(key, good + b"\0" * 5_000_000)  # the server keeps sending
    fetcher = LakeFetcher(repo.lake, device.state_dir / "partial", chunk=64 * 1024)
    up = device.updater(repo.lake, repo.channel, trusted_root, fetcher=fetcher)
    assert up.check() == "failed"
    assert "length" in up.rec.detail.lower() or "exceed" in up.rec.detail.lower()
    assert fetcher.fetched_by_key[key] == length + 1  # stopped one byte past the signed length
    assert_untouched(device, up)
    repo.lake.put(key, good)
    assert install(device, device.updater(repo.lake, repo.channel, trusted_root)) == "active"


def test_6_tampered_artifact_bytes(repo, device, trusted_root):
    channel = ship(repo, pad_bytes=200_000)
    key, _ = _artifact_key(repo, channel)
    good = repo.lake.get(key)
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    repo.lake.put(key, bytes(bad))
    up = device.updater(repo.lake, repo.channel, trusted_root)
    assert up.check() == "failed"
    assert "hash" in up.rec.detail.lower()
    assert_untouched(device, up)
    assert not list((device.state_dir / "partial").glob("*.part"))  # bad bytes never resumed from
    repo.lake.put(key, good)
    assert install(device, device.updater(repo.lake, repo.channel, trusted_root)) == "active"


def test_7_download_interrupted_three_times_resumes(repo, device, trusted_root):
    channel = ship(repo, pad_bytes=1_000_000)
    key, length = _artifact_key(repo, channel)
    flaky = InterruptingLake(repo.lake, cuts=[int(length * f) for f in (0.27, 0.53, 0.81)],
                             match=".model.onnx")
    fetcher = LakeFetcher(flaky, device.state_dir / "partial")
    states = [device.updater(flaky, repo.channel, trusted_root, fetcher=fetcher).check()
              for _ in range(3)]
    assert states == ["failed"] * 3 and flaky.interruptions == 3
    assert device.running_version() == "factory-0"
    up = device.updater(flaky, repo.channel, trusted_root, fetcher=fetcher)
    assert install(device, up) == "active"
    assert device.running_version() == "m-1"
    assert fetcher.fetched_by_key[key] == length  # every byte that reached the disk, once
    assert fetcher.fetched_by_key[key] + flaky.wasted_bytes <= 1.05 * length  # with the lost bytes


def test_8_lake_unreachable_during_check(repo, device, trusted_root):
    ship(repo)
    up = device.updater(unreachable_lake(), repo.channel, trusted_root)
    assert up.check() == "failed"
    assert "unreachable" in up.rec.detail.lower() or "download" in up.rec.detail.lower()
    assert_untouched(device, up)
    assert install(device, device.updater(repo.lake, repo.channel, trusted_root)) == "active"


def test_9_disk_full_during_download(repo, device, trusted_root):
    channel = ship(repo, pad_bytes=600_000)
    key, length = _artifact_key(repo, channel)
    fetcher = LakeFetcher(repo.lake, device.state_dir / "partial", chunk=64 * 1024,
                          write_hook=raise_disk_full(length // 2))
    up = device.updater(repo.lake, repo.channel, trusted_root, fetcher=fetcher)
    assert up.check() == "failed"
    assert "disk full" in up.rec.detail.lower()
    assert_untouched(device, up)
    fetcher.write_hook = None  # space freed: the download resumes from what reached the disk
    assert install(device, device.updater(repo.lake, repo.channel, trusted_root, fetcher=fetcher)
                   ) == "active"
    # resumed from what reached the disk: only the one chunk that could not be written came twice
    assert length < fetcher.fetched_by_key[key] <= length + 64 * 1024


def test_10_golden_validation_fails(repo, device, trusted_root):
    bad = ship(repo, 1, "m-bad", golden_seed_model=7)  # its outputs do not match its golden set
    up = device.updater(repo.lake, repo.channel, trusted_root)
    assert up.check() == "failed"
    assert "golden validation failed" in up.rec.detail
    assert bad.release.release_id in up.rec.rejected
    assert device.running_version() == "factory-0"
    assert up.check() != "probing"  # a rejected release is not retried
    ship(repo, 2, "m-2")
    assert install(device, device.updater(repo.lake, repo.channel, trusted_root)) == "active"
    assert device.running_version() == "m-2"


@pytest.mark.parametrize("breach", ["crash", "latency", "restart"])
def test_13_probation_breach_rolls_back(repo, device, trusted_root, breach):
    channel = ship(repo)
    cfg = {"max_probe_p99_ms": 1e-6} if breach == "latency" else {}
    up = device.updater(repo.lake, repo.channel, trusted_root, **cfg)
    assert up.check() == "probing"
    assert device.running_version() == "m-1"  # swapped, on probation
    if breach == "crash":
        up.record_crash("segfault in inference")
        assert up.check() == "rolled_back"
    elif breach == "latency":
        assert up.probe() == "rolled_back"
        assert "p99" in up.rec.detail
    else:  # the agent died during probation: the restart counts as a crash
        up = device.updater(repo.lake, repo.channel, trusted_root)
        assert up.recover() == "rolled_back"
    assert device.running_version() == "factory-0"
    assert channel.release.release_id in up.rec.rejected
    assert up.status().state == "rolled_back"
    assert device.updater(repo.lake, repo.channel, trusted_root).check() == "rolled_back"  # not retried


def test_15_online_key_rotation(repo, device, trusted_root, keys_dir, tmp_path):
    ship(repo, 1, "m-1")
    assert install(device, device.updater(repo.lake, repo.channel, trusted_root)) == "active"
    old_timestamp = load_keys(keys_dir, roles=("timestamp",)).signer("timestamp")
    for role in ("targets", "snapshot", "timestamp"):
        generate_key(tmp_path / "new", role)
    new = load_keys(tmp_path / "new")
    for role in ("targets", "snapshot", "timestamp"):
        repo.rotate(role, new)
    assert repo.root.signed.version == 4
    ship(repo, 2, "m-2")
    up = device.updater(repo.lake, repo.channel, trusted_root)  # trusts only root v1 (factory)
    assert install(device, up) == "active"
    assert device.running_version() == "m-2"
    # The retired timestamp key signs nothing the device accepts any more.
    ts = Metadata.from_bytes(repo.lake.get(f"{repo.meta_prefix}/timestamp.json"))
    ts.signed.version += 1
    ts.signatures.clear()
    ts.sign(old_timestamp)
    repo.lake.put(f"{repo.meta_prefix}/timestamp.json", ts.to_bytes())
    assert device.updater(repo.lake, repo.channel, trusted_root).check() == "failed"
    assert device.running_version() == "m-2"


def _signer(path):
    from flywheel.release.keys import signer_from_pem

    return signer_from_pem(path.read_bytes())
