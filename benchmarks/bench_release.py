"""Release/OTA benchmarks (writes var/bench/release.json).

1. Resume efficiency: bytes of the model artifact fetched per device over its size when the download
   is cut three times (at 27/53/81 %, mid-read: the bytes in flight are lost), through the real TUF
   client; target <= 1.05. Baseline in the same run: the same cuts with resume disabled (partials
   discarded: every attempt starts over).
2. Time to apply an update on one device: TUF refresh + download + golden validation in the inactive
   slot + swap + probation (20 frames) + commit, median over runs; compared with the bare floor
   (read the three files from the lake, write them into a slot, activate) as a ratio.
3. Fleet: time from a release published to 100 % of a 20-cart fleet on the new model, every cart
   running the real updater (8 carts at a time in threads), and how it grows at 200 carts
   (ratio per cart: ~1.0 means the release path costs the same per cart at 10x the fleet).

Run: `python -m benchmarks.bench_release [out_dir]`.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL_PAD = 8 * 1024 * 1024  # an 8 MB model: the size class of a small on-device classifier
APPLY_RUNS = 5
FLEETS = (20, 200)
PARALLEL = 8


def _setup(work: Path, pad: int, seed: int = 1):
    from edge_agent.contract.release import RolloutStage
    from edge_agent.lake import Lake
    from flywheel.release.keys import keygen, load_keys
    from flywheel.release.publish import publish_release
    from flywheel.release.repository import open_channel
    from tests.support.ota import release_files

    keygen(work / "keys")
    lake = Lake.at_path(work / "lake")
    repo = open_channel(lake, "stable", load_keys(work / "keys"))
    channel = publish_release(repo, f"cls-{seed}", release_files(seed, f"m-{seed}", pad_bytes=pad),
                              RolloutStage(stage="full", percent=100))
    root = lake.get("releases/stable/metadata/1.root.json")
    path = channel.release.files["model.onnx"]
    info = repo.targets.signed.targets[path]
    return lake, repo, channel, root, repo.target_key(path, info.hashes["sha256"]), info.length


def _device(work: Path, name: str):
    from tests.support.ota import SimDevice

    d = SimDevice(name, work / name)
    d.install_factory()
    return d


def bench_resume(work: Path) -> dict:
    from edge_agent.ota.fetcher import LakeFetcher
    from tests.support.ota import InterruptingLake

    lake, repo, _, root, key, length = _setup(work, MODEL_PAD)
    out = {}
    for mode in ("resume", "restart"):
        d = _device(work, f"cart-{mode}")
        cuts = [int(length * f) for f in (0.27, 0.53, 0.81)]  # mid-chunk: the read in flight is lost
        flaky = InterruptingLake(lake, cuts, match=".model.onnx")
        fetcher = LakeFetcher(flaky, d.state_dir / "partial")
        state = "failed"
        for _ in range(10):
            if mode == "restart":
                fetcher.discard_all()  # what a client without resume does: start over
            state = d.updater(flaky, "stable", root, fetcher=fetcher).check()
            if state != "failed":
                break
        assert state == "probing", state
        fetched = fetcher.fetched_by_key[key] + flaky.wasted_bytes  # incl. bytes lost in drops
        out[mode] = {"bytes_fetched": fetched, "lost_in_drops": flaky.wasted_bytes,
                     "artifact_bytes": length, "ratio": round(fetched / length, 4),
                     "interruptions": flaky.interruptions}
    out["target"] = 1.05
    out["met"] = out["resume"]["ratio"] <= 1.05
    return out


def bench_apply(work: Path) -> dict:
    from edge_agent.model import activate_slot

    lake, _, channel, root, _, _ = _setup(work, 0)
    keys = {n: _key(lake, channel.release.files[n]) for n in ("model.onnx", "model.json", "golden.npz")}
    apply_s, floor_s = [], []
    for i in range(APPLY_RUNS):
        d = _device(work, f"cart-apply-{i}")
        up = d.updater(lake, "stable", root, probation_frames=20)
        t = time.perf_counter()
        assert up.check() == "probing" and up.probe() == "active"
        apply_s.append(time.perf_counter() - t)
        # floor: the same bytes into the inactive slot and one atomic switch, no TUF, no checks
        d2 = _device(work, f"cart-floor-{i}")
        t = time.perf_counter()
        slot = d2.model_dir / "slots" / "b"
        slot.mkdir(parents=True, exist_ok=True)
        for name in ("model.onnx", "model.json", "golden.npz"):
            (slot / name).write_bytes(lake.get(keys[name]))
        activate_slot(d2.model_dir, "b")
        floor_s.append(time.perf_counter() - t)
    med, base = statistics.median(apply_s), statistics.median(floor_s)
    return {"apply_s_median": round(med, 4), "apply_s_all": [round(x, 4) for x in apply_s],
            "floor_s_median": round(base, 4), "ratio_vs_floor": round(med / base, 2),
            "probation_frames": 20}


def _key(lake, target_path: str) -> str:
    """The content-addressed key of a target, looked up in the published targets metadata."""
    from tuf.api.metadata import Metadata

    ts = Metadata.from_bytes(lake.get("releases/stable/metadata/timestamp.json"))
    snap = Metadata.from_bytes(lake.get(f"releases/stable/metadata/{ts.signed.snapshot_meta.version}"
                                        ".snapshot.json"))
    tv = snap.signed.meta["targets.json"].version
    targets = Metadata.from_bytes(lake.get(f"releases/stable/metadata/{tv}.targets.json"))
    info = targets.signed.targets[target_path]
    folder, _, name = target_path.rpartition("/")
    return f"releases/stable/targets/{folder}/{info.hashes['sha256']}.{name}"


def _update(d, lake, root: bytes, expect: str) -> bool:
    """One cart's update path; it checks again on its next interval after a failure."""
    for _ in range(3):
        up = d.updater(lake, "stable", root)
        up.recover()
        state = up.check()
        if state == "probing":
            state = up.probe()
        if state == "active" and d.running_version() == expect:
            return True
    return False


def bench_fleet(work: Path) -> dict:
    from edge_agent.contract.release import RolloutStage
    from flywheel.release.keys import load_keys
    from flywheel.release.publish import publish_release
    from flywheel.release.repository import open_channel
    from tests.support.ota import release_files

    out = {}
    for n in FLEETS:
        w = work / f"fleet-{n}"
        lake, _, _, root, _, _ = _setup(w, 0, seed=1)
        carts = [_device(w, f"cart-{i:04d}") for i in range(n)]

        with ThreadPoolExecutor(PARALLEL) as pool:  # every cart on m-1 first
            assert all(pool.map(partial(_update, lake=lake, root=root, expect="m-1"), carts))
        repo = open_channel(lake, "stable", load_keys(w / "keys"), create=False)
        t = time.perf_counter()
        publish_release(repo, "cls-2", release_files(2, "m-2"), RolloutStage(stage="full", percent=100))
        with ThreadPoolExecutor(PARALLEL) as pool:
            done = list(pool.map(partial(_update, lake=lake, root=root, expect="m-2"), carts))
        elapsed = time.perf_counter() - t
        out[str(n)] = {"carts": n, "on_new_model": sum(done), "seconds_to_100pct": round(elapsed, 2),
                       "seconds_per_cart": round(elapsed / n, 4)}
        shutil.rmtree(w, ignore_errors=True)
    a, b = out[str(FLEETS[0])], out[str(FLEETS[1])]
    out["growth_total"] = round(b["seconds_to_100pct"] / a["seconds_to_100pct"], 2)
    out["growth_per_cart"] = round(b["seconds_per_cart"] / a["seconds_per_cart"], 2)
    out["parallel_carts"] = PARALLEL
    return out


def main(out_dir: Path | None = None) -> dict:
    out_dir = Path(out_dir or ROOT / "var" / "bench")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result = {"resume": bench_resume(work / "resume"), "apply": bench_apply(work / "apply"),
                  "fleet": bench_fleet(work / "fleet")}
    (out_dir / "release.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]) if len(sys.argv) > 1 else None), indent=2))
