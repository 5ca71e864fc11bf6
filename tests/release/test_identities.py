"""(16) Device credentials on SeaweedFS S3 identities: a device reads releases and writes its own
clip and status prefixes (the clip layout puts the device first so a prefix rule can own them), and
can write neither under releases/ nor another device's prefix. The device uploads a real clip and
runs a real OTA update with its own restricted credentials; the cloud ingests the clip."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge_agent.capture.spool import Spool
from edge_agent.contract.layout import clip_key, parse_clip_key, sidecar_key, status_key
from edge_agent.contract.release import RolloutStage
from edge_agent.lake import Lake, LakeError, S3Options
from edge_agent.telemetry import Telemetry
from edge_agent.upload import Uploader
from flywheel.depot.ingest import ingest_day
from flywheel.release.keys import load_keys
from flywheel.release.publish import publish_release
from flywheel.release.repository import open_channel
from tests.edge_agent.test_capture import make_job, spool_one
from tests.support.ota import SimDevice, release_files


@pytest.mark.slow
@pytest.mark.integration
def test_16_device_identities_cannot_write_releases_or_other_devices(tmp_path: Path, keys_dir):
    from flywheel.devstack.seaweedfs import ACCESS_KEY, SECRET_KEY, device_identities, seaweedfs

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
        # a real upload with the device's credentials: clip, sidecar, arrival marker
        spool = Spool(tmp_path / "spool", cap_bytes=10**8)
        spool_one(spool, make_job(seed=3), tmp_path, 1)  # a clip of device cart-1
        entry = spool.checkout()
        assert entry.clip_key.startswith("landing/clips/device=cart-1/")
        Uploader(cart1, spool, Telemetry()).upload(entry)
        assert cloud.exists(entry.clip_key) and cloud.exists(entry.sidecar_key)
        day = parse_clip_key(entry.clip_key).date
        # cart-2 cannot land a clip claiming to be cart-1, nor cart-1 one for cart-2 or in layout 1
        cart2 = lake_as("cart-2", devices["cart-2"])
        with pytest.raises(LakeError):
            cart2.put(entry.clip_key.replace(".mp4", "0.mp4"), b"forged")
        refused[clip_key(day, "A", "cart-2", "f" * 32)] = b"forged"
        refused[clip_key(day, "A", "cart-1", "f" * 32, layout=1)] = b"forged"
        refused[sidecar_key(day, "A", "cart-2", "f" * 32)] = b"{}"
        refused["landing/corrections/evil.json"] = b"{}"
        for key, data in refused.items():
            with pytest.raises(LakeError):
                cart1.put(key, data)
            assert not cloud.exists(key) or key.startswith("releases/stable/metadata/timestamp")
        report = ingest_day(cloud, day)  # the cloud ingests what the device landed, nothing forged
        assert report.clips_ingested == [entry.clip_id] and not report.rejections, report.rejections
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
