"""(16) Device credentials on SeaweedFS S3 identities: a device reads releases and writes its own
status prefix, and can write neither under releases/ nor another device's prefix. The device runs a
real OTA update with its own restricted credentials."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge_agent.contract.layout import status_key
from edge_agent.contract.release import RolloutStage
from edge_agent.lake import Lake, LakeError, S3Options
from flywheel.release.keys import load_keys
from flywheel.release.publish import publish_release
from flywheel.release.repository import open_channel
from tests.support.ota import SimDevice, release_files


@pytest.mark.slow
@pytest.mark.integration
def test_16_device_identities_cannot_write_releases_or_other_devices(tmp_path: Path, keys_dir):
    from tests.support.seaweedfs import ACCESS_KEY, SECRET_KEY, device_identities, seaweedfs

    devices = {"cart-1": "secret-cart-1", "cart-2": "secret-cart-2"}
    config = tmp_path / "s3.json"
    config.write_text(json.dumps(device_identities("flywheel", devices)))
    with seaweedfs(tmp_path / "weed", s3_config=config) as server:
        def lake_as(key: str, secret: str) -> Lake:
            return Lake(f"s3://{server.bucket}", s3=S3Options(
                endpoint=server.endpoint, access_key_id=key, secret_access_key=secret, max_retries=0))

        cloud = lake_as(ACCESS_KEY, SECRET_KEY)
        repo = open_channel(cloud, "stable", load_keys(keys_dir))
        publish_release(repo, "cls-1", release_files(1, "m-1"), RolloutStage(stage="full", percent=100))
        cart1 = lake_as("cart-1", devices["cart-1"])
        now = datetime.now(UTC)
        cart1.put(status_key("cart-1", now), b"{}")  # its own prefix: allowed
        refused = {
            "releases/stable/metadata/timestamp.json": b"{}",  # forge freshness
            "releases/stable/targets/evil.model.onnx": b"x",
            status_key("cart-2", now): b"{}",  # impersonate another cart
            "models/production.json": b"{}",
        }
        for key, data in refused.items():
            with pytest.raises(LakeError):
                cart1.put(key, data)
            assert not cloud.exists(key) or key.startswith("releases/stable/metadata/timestamp")
        ts = cloud.get("releases/stable/metadata/timestamp.json")
        assert json.loads(ts)["signed"]["_type"] == "timestamp"  # untouched by the refused put
        with pytest.raises(LakeError):
            lake_as("cart-1", "wrong-secret").get("releases/stable/metadata/timestamp.json")
        # The real update, with the device's own restricted credentials
        device = SimDevice("cart-1", tmp_path / "cart-1")
        device.install_factory()
        up = device.updater(cart1, "stable", cloud.get("releases/stable/metadata/1.root.json"))
        assert up.check() == "probing", up.rec.detail
        assert up.probe() == "active"
        assert device.running_version() == "m-1"
