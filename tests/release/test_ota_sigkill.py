"""(11) SIGKILL after download before the swap, (12) SIGKILL during the swap: a real process killed
at the persisted step; on restart the device resumes (or rolls back) and ends with a working model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.release.test_ota_faults import ship

ROOT = Path(__file__).resolve().parents[2]


def _run(repo, device, root_json: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tests.release.device_proc", repo.lake.uri,
                           repo.channel, str(root_json), str(device.root), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", ["verified", "swapping", "probing"])
def test_11_12_sigkill_then_restart(repo, device, trusted_root, tmp_path, request, kill_at):
    env = dict(os.environ)
    if repo.lake.uri.startswith("s3://"):
        env.update(request.getfixturevalue("seaweed").env())
    root_json = tmp_path / "root.json"
    root_json.write_bytes(trusted_root)
    ship(repo, pad_bytes=300_000)
    killed = _run(repo, device, root_json, "--kill-at", kill_at, env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    # Whatever the kill left, the device runs a working model right now.
    assert device.running_version() in ("factory-0", "m-1")
    if kill_at == "verified":
        assert device.running_version() == "factory-0"  # nothing swapped before the kill
    after = _run(repo, device, root_json, "--probe", env=env)
    assert after.returncode == 0, after.stderr[-2000:]
    if kill_at == "probing":
        # killed on probation: the restart counts as a crash, the device rolls back
        assert after.stdout.splitlines()[0] == "rolled_back"
        assert device.running_version() == "factory-0"
    else:
        assert after.stdout.splitlines()[0] == "active", after.stdout + after.stderr[-2000:]
        assert device.running_version() == "m-1"


@pytest.mark.slow
def test_sigkill_mid_download_resumes_from_disk(repo, device, trusted_root, tmp_path, request):
    import json

    env = dict(os.environ)
    if repo.lake.uri.startswith("s3://"):
        env.update(request.getfixturevalue("seaweed").env())
    root_json = tmp_path / "root.json"
    root_json.write_bytes(trusted_root)
    channel = ship(repo, pad_bytes=600_000)
    path = channel.release.files["model.onnx"]
    info = repo.targets.signed.targets[path]
    key = repo.target_key(path, info.hashes["sha256"])
    # files download in path order: golden.npz (resumable, counted by the hook), model.json, model.onnx
    golden = repo.targets.signed.targets[channel.release.files["golden.npz"]].length
    killed = _run(repo, device, root_json, "--kill-after-bytes", str(golden + info.length // 2),
                  env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert device.running_version() == "factory-0"
    after = _run(repo, device, root_json, "--probe", env=env)
    assert after.returncode == 0, after.stderr[-2000:]
    state, fetched = after.stdout.splitlines()[:2]
    assert state == "active" and device.running_version() == "m-1"
    # the second process fetched only what the first had not written to disk
    assert info.length // 2 - 64 * 1024 <= json.loads(fetched)[key] <= info.length // 2 + 64 * 1024
