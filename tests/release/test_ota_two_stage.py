"""A two-stage model (detector + crop classifier) through release and OTA, on real TUF metadata in a
real lake (local and SeaweedFS): both files are signed targets, installed into one slot, swapped
and rolled back together; a detector the signed release does not vouch for is refused."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from edge_agent.contract.release import CHANNEL_TARGET, ReleaseChannelV1, ReleaseRef, RolloutStage
from edge_agent.contract.schemas import dump_document
from edge_agent.model import DeviceModel, resolve_slot
from flywheel.release.publish import publish_release, release_id, rollback_release
from flywheel.release.repository import RepositoryError
from tests.support.ota import onnx_detector, release_files, two_stage_release_files

FULL = RolloutStage(stage="full", percent=100)


def install(up) -> str:
    assert up.check() == "probing", up.rec.detail
    return up.probe()


def test_two_stage_release_installs_both_files_and_rolls_back_with_them(repo, device, trusted_root):
    channel = publish_release(repo, "cls-two-1", two_stage_release_files(1, "two-1"), FULL)
    assert set(channel.release.files) == {"model.onnx", "model.json", "golden.npz", "detector.onnx"}
    up = device.updater(repo.lake, repo.channel, trusted_root)
    assert install(up) == "active", up.rec.detail
    assert device.running_version() == "two-1"
    slot = resolve_slot(device.model_dir)
    assert (slot / "detector.onnx").read_bytes() == onnx_detector(1)
    assert DeviceModel(device.model_dir).detector is not None

    # a one-stage release replaces it (its slot has no detector), then the channel rolls back:
    # the republished two-stage release carries its detector again
    publish_release(repo, "cls-one-2", release_files(2, "one-2"), FULL)
    assert install(up) == "active" and device.running_version() == "one-2"
    assert not (resolve_slot(device.model_dir) / "detector.onnx").exists()
    back = rollback_release(repo)
    assert back.release.model_id == "cls-two-1" and "detector.onnx" in back.release.files
    assert install(up) == "active" and device.running_version() == "two-1"
    assert (resolve_slot(device.model_dir) / "detector.onnx").read_bytes() == onnx_detector(1)


def test_the_cloud_never_publishes_a_detector_model_json_does_not_name(repo):
    files = two_stage_release_files(1, "two-1")
    with pytest.raises(RepositoryError, match="names detector"):
        publish_release(repo, "cls-two-1", {k: v for k, v in files.items() if k != "detector.onnx"},
                        FULL)
    with pytest.raises(RepositoryError, match="another sha256"):
        publish_release(repo, "cls-two-1", {**files, "detector.onnx": onnx_detector(7)}, FULL)
    with pytest.raises(RepositoryError, match="belong to no slot"):
        publish_release(repo, "cls-one-1", {**release_files(1, "one-1"), "detector.onnx": b"x"}, FULL)


def _publish_unchecked(repo, model_id: str, files: dict[str, bytes], signed: list[str]) -> None:
    """What a compromised or buggy publisher could sign: `signed` of `files` as the release."""
    seq = repo.targets.signed.version + 1
    rid = release_id(seq, model_id)
    ref = ReleaseRef(release_id=rid, model_id=model_id, model_version=model_id,
                     files={n: f"{rid}/{n}" for n in signed})
    channel = ReleaseChannelV1(channel=repo.channel, sequence=seq, published_at=datetime.now(UTC),
                               release=ref, rollout=FULL)
    repo.publish({**{ref.files[n]: files[n] for n in signed}, CHANNEL_TARGET: dump_document(channel)})


@pytest.mark.parametrize("case", ["detector_not_signed", "detector_hash_not_named",
                                  "detector_golden_mismatch"])
def test_device_refuses_a_detector_the_signed_release_does_not_vouch_for(repo, device, trusted_root,
                                                                         case):
    import io

    import numpy as np

    files = two_stage_release_files(1, "two-1")
    signed = sorted(files)
    if case == "detector_not_signed":  # model.json names a detector the release does not carry
        signed.remove("detector.onnx")
        want = "not a signed file"
    elif case == "detector_hash_not_named":  # signed, but not the bytes model.json vouches for
        files = two_stage_release_files(1, "two-1",
                                        detector_sha256=hashlib.sha256(onnx_detector(7)).hexdigest())
        want = "sha256"
    else:  # the detector does not reproduce its golden outputs
        golden = dict(np.load(io.BytesIO(files["golden.npz"])))
        golden["detector_expected"] = golden["detector_expected"] + 0.5
        buf = io.BytesIO()
        np.savez(buf, **golden)
        files = {**files, "golden.npz": buf.getvalue()}
        want = "detector"
    _publish_unchecked(repo, "two-1", files, signed)
    up = device.updater(repo.lake, repo.channel, trusted_root)
    assert up.check() == "failed"
    assert want in up.rec.detail and up.rec.rejected, up.rec.detail
    assert device.running_version() == "factory-0"  # the running model was never touched
