"""One device process for the SIGKILL tests: recover, then one update check, killing itself with
SIGKILL right after the updater persists `--kill-at` (a power cut at that exact step).

    python -m tests.release.device_proc LAKE_URI CHANNEL ROOT_JSON DEVICE_DIR [--kill-at STATE]

S3 credentials come from the AWS_* environment (flywheel/devstack/seaweedfs.py SeaweedServer.env()).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from edge_agent.lake import open_lake
from tests.support.ota import SimDevice


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("lake")
    p.add_argument("channel")
    p.add_argument("root_json")
    p.add_argument("device_dir")
    p.add_argument("--kill-at", default=None)
    p.add_argument("--kill-after-bytes", type=int, default=0,
                   help="SIGKILL once this many artifact bytes reached the disk (mid-download)")
    p.add_argument("--probe", action="store_true", help="run probation frames after the check")
    a = p.parse_args()
    from edge_agent.ota.fetcher import LakeFetcher

    device = SimDevice(Path(a.device_dir).name, Path(a.device_dir))
    lake = open_lake(a.lake)
    written = [0]

    def kill_mid_download(path, n: int) -> None:
        if a.kill_after_bytes and written[0] + n > a.kill_after_bytes:
            os.kill(os.getpid(), signal.SIGKILL)
        written[0] += n

    fetcher = LakeFetcher(lake, device.state_dir / "partial", write_hook=kill_mid_download)
    up = device.updater(lake, a.channel, Path(a.root_json).read_bytes(), fetcher=fetcher)
    if a.kill_at:
        up.on_state = lambda s: os.kill(os.getpid(), signal.SIGKILL) if s == a.kill_at else None
    up.recover()
    state = up.check()
    if a.probe and state == "probing":
        state = up.probe()
    print(state)
    print(json.dumps(dict(fetcher.fetched_by_key)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
