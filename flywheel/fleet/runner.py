"""Drive simulated carts through real edge agents: the fleet, on one machine.

Each cart is an in-process `edge_agent.Agent` with its own spool directory, model slot and device
id, fed back-to-back simulated cart sessions (flywheel.sim) for the requested minutes of simulated
time. When the lake holds a release channel (TUF repository), releases reach the carts only through
the real OTA client: every cart starts on the factory model, runs `edge_agent.ota.OtaUpdater`
(provisioned with the channel's root v1), installs what its cohort is assigned, probes it on live
frames and commits or rolls back. Only the device view (image, t, weight, location) reaches the
agent; the ground truth stays here. Carts advance in lock-step, one frame each per tick, so their
uploads interleave like a real fleet's. Clips land in the lake exactly as devices would write them.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.agent import Agent
from edge_agent.capture.spool import Spool
from edge_agent.config import CaptureConfig, UploadConfig
from edge_agent.lake import Lake
from edge_agent.model import DeviceModel
from edge_agent.runtime import model_loader
from edge_agent.sources import Frame
from edge_agent.triggers.rules import RuleSet, build_rule_set
from flywheel.fleet.bootstrap import install_model_slot, install_registry_model
from flywheel.learner.registry import production_model_id

if TYPE_CHECKING:
    from flywheel.sim.session import SimFrame

log = logging.getLogger(__name__)

# What a cart captures by default: barcode scans in motion, an insertion the model decided with
# low confidence (once per insertion, on the frame that closes it: a poor model no longer marks
# every moving frame uncertain), the load cell stepping, and (first in the upload queue) the model
# contradicting a barcode.
DEFAULT_RULES = {
    "version": "fleet-default-2",
    "rules": [
        {"name": "mismatch", "when": "disagreement", "priority": 0},
        {"name": "uncertain", "when": 'low_confidence(0.55, "insertion")', "priority": 1},
        {"name": "scan", "when": "all(motion, barcode)", "priority": 3},
        {"name": "insert", "when": "weight_change(50)", "priority": 4},
    ],
}


@dataclass
class FleetSummary:
    carts: int
    minutes: float
    frames: int = 0
    sessions: int = 0
    captures: int = 0
    spooled: int = 0
    uploaded: int = 0
    uploaded_bytes: int = 0
    still_spooled: int = 0
    drops: dict[str, int] = field(default_factory=dict)
    fires: dict[str, int] = field(default_factory=dict)
    upload_failures: int = 0
    insertions: int = 0  # insertions the carts decided (edge_agent/insertion.py)
    insertions_low_confidence: int = 0  # of those, decided below the low-confidence mark
    inference_p99_ms: float = 0.0
    devices: list[str] = field(default_factory=list)
    lake: str = ""
    model_version: str = ""  # the device model the carts ran
    ota: dict[str, str] = field(default_factory=dict)  # device -> OTA state at the end (release channel)
    models: dict[str, str] = field(default_factory=dict)  # device -> model version at the end

    @property
    def dropped(self) -> int:
        return sum(self.drops.values())

    def reconciles(self) -> bool:
        """Every capture is accounted for: uploaded, dropped with a cause, or still spooled."""
        return self.captures == self.uploaded + self.dropped + self.still_spooled

    def as_dict(self) -> dict:
        """Plain numbers for metadata (Dagster materializations, the demo's printout)."""
        return {**dataclasses.asdict(self), "dropped": self.dropped, "reconciles": self.reconciles()}

    def lines(self) -> list[str]:
        drops = ", ".join(f"{k}={v}" for k, v in sorted(self.drops.items())) or "none"
        fires = ", ".join(f"{k}={v}" for k, v in sorted(self.fires.items())) or "none"
        return [
            f"fleet: {self.carts} cart(s), {self.minutes:g} simulated minute(s), {self.sessions} "
            f"session(s), {self.frames} frames -> {self.lake}",
            f"  device model: {self.model_version}" + (
                f"; OTA: {dict(Counter(self.ota.values()))}, models at the end: "
                f"{dict(Counter(self.models.values()))}" if self.ota else ""),
            f"  rule firings: {fires}",
            f"  insertions decided on the carts: {self.insertions} "
            f"({self.insertions_low_confidence} with low confidence)",
            f"  captured {self.captures}  uploaded {self.uploaded} ({self.uploaded_bytes / 1e6:.2f} MB)"
            f"  dropped {self.dropped} ({drops})  still spooled {self.still_spooled}",
            f"  upload failures (retried) {self.upload_failures}  inference p99 "
            f"{self.inference_p99_ms:.2f} ms  counts reconcile: {self.reconciles()}",
        ]


def cart_sim_frames(world, store: str, cart: int, seed: int, n_frames: int, start: datetime,
                    counter: Counter | None = None) -> Iterator[tuple[SimFrame, float, datetime]]:
    """Back-to-back sessions of one cart, with continuous time, until n_frames are out: (frame with
    its ground truth, cart time t, wall clock). Only the fleet driver and evaluation code read it."""
    t_offset, k, emitted = 0.0, 0, 0
    while emitted < n_frames:
        session = world.session(store, seed * 1_000_003 + cart * 1009 + k)
        if counter is not None:
            counter["sessions"] += 1
        k += 1
        last_t = 0.0
        for sf in session:
            last_t = sf.device.t
            t = t_offset + sf.device.t
            yield sf, t, start + timedelta(seconds=t)
            emitted += 1
            if emitted >= n_frames:
                return
        t_offset += last_t + 2.0  # a couple of seconds between shoppers


def _cart_frames(world, store: str, cart: int, seed: int, n_frames: int, start: datetime,
                 counter: Counter) -> Iterator[Frame]:
    """What the cart's device sees: the sensors only, never the ground truth."""
    for sf, t, wall in cart_sim_frames(world, store, cart, seed, n_frames, start, counter):
        d = sf.device
        yield Frame(d.image, t, weight_g=d.weight_g, location=(d.location.aisle, d.location.position_m),
                    wall=wall)


def cart_plan(world, carts: int, day: date) -> list[tuple[str, str, datetime]]:
    """(store, device id, start of its day) of each cart: the fleet's fixed layout."""
    start_of_day = datetime.combine(day, time(9, 0), tzinfo=UTC)
    out = []
    for i in range(carts):
        store = world.store_names[i % len(world.store_names)]
        out.append((store, f"cart-{store}-{i:03d}", start_of_day + timedelta(minutes=7 * i)))
    return out


def simulate_fleet(lake: Lake, carts: int = 3, minutes: float = 1.0, seed: int = 0,
                   day: date | str | None = None, *, work_dir: str | Path | None = None,
                   rules: RuleSet | None = None, fps: float = 10.0, stores: int = 3,
                   spool_cap_bytes: int = 512 * 1024 * 1024, drain_timeout_s: float = 120.0,
                   progress: bool = True, model_id: str | None = None,
                   channel: str | None = "stable", world_seed: int | None = None) -> FleetSummary:
    """Run `carts` simulated carts for `minutes` of simulated time each; returns the summary.
    With a release `channel` in the lake, models arrive over the air (see the module doc).
    `world_seed` (default: `seed`) fixes the catalog; `seed` the shoppers, so successive turns of
    the loop collect new moments in the world the learner's catalog and test sets come from."""
    from flywheel.sim import default_world

    if carts < 1 or minutes <= 0:
        raise ValueError("carts must be >= 1 and minutes > 0")
    day = date.fromisoformat(day) if isinstance(day, str) else (day or datetime.now(UTC).date())
    world = default_world(seed if world_seed is None else world_seed, stores)
    rules = rules or build_rule_set(DEFAULT_RULES["version"], DEFAULT_RULES["rules"])
    labels = ["none", *(p.ean for p in world.catalog.products)]
    tmp = None
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="fleet-")
        work_dir = tmp.name
    work = Path(work_dir)
    root = _channel_root(lake, channel) if channel and not model_id else None
    # Without a release channel the fleet runs what production runs: the registry's production
    # model once there is one, else the untrained bootstrap classifier.
    model_id = None if root else (model_id or production_model_id(lake))

    def cart_model(device: str) -> Path:
        if model_id:
            return install_registry_model(lake, work / "model" / device, model_id)
        return install_model_slot(work / "model" / device, labels, version="bootstrap-0", seed=seed,
                                  background=world.basket)

    n_frames = max(1, int(round(minutes * 60 * fps)))
    counter: Counter = Counter()
    agents: list[Agent] = []
    feeds: list[Iterator[Frame]] = []
    try:
        for i, (store, device, start) in enumerate(cart_plan(world, carts, day)):
            model_dir = cart_model(device)
            agent = Agent(
                device_id=device, store_id=store, model=DeviceModel(model_dir), rules=rules,
                spool=Spool(work / "spool" / device, cap_bytes=spool_cap_bytes), lake=lake,
                # simulated carts share this process: encode on threads, libx264 (no probing)
                capture=CaptureConfig(pre_roll_s=1.0, post_roll_s=1.0, max_clip_s=8.0, queue_size=8,
                                      encoders=[], isolation="thread"),
                upload=UploadConfig(backoff_base_s=0.1, backoff_cap_s=2.0),
                status_interval_s=30.0, model_loader=model_loader(model_dir, threads=1))
            if root is not None:
                agent.ota = _updater(lake, channel, root, device, model_dir, work)
                agent.ota_check_s = 0  # driven here: once before the shift, once after it
                agent.ota.recover()
                agent.check_ota()
            agents.append(agent.start())
            feeds.append(_cart_frames(world, store, i, seed, n_frames, start, counter))
        _drive(agents, feeds, n_frames, progress)
        ota = {a.device_id: a.check_ota() for a in agents if a.ota is not None}  # probation judged
        models = {a.device_id: a.model.version for a in agents}
        for a in agents:  # the last status report carries the final OTA state
            a.publish_status()
        totals = [a.close(drain_timeout=drain_timeout_s) for a in agents]
        summary = FleetSummary(carts=carts, minutes=minutes, sessions=counter["sessions"],
                               devices=[a.device_id for a in agents], lake=lake.uri,
                               model_version=model_id or ("over the air" if root else "bootstrap-0"),
                               ota=ota if root else {}, models=models)
        drops: Counter = Counter()
        fires: Counter = Counter()
        for a, t in zip(agents, totals, strict=True):
            summary.frames += t["frames"]
            summary.captures += t["captures"]
            summary.spooled += t["spooled"]
            summary.uploaded += t["uploaded_clips"]
            summary.uploaded_bytes += t["uploaded_bytes"]
            summary.upload_failures += t["upload_failures"]
            summary.insertions += t["insertions"]
            summary.insertions_low_confidence += t["insertions_low_confidence"]
            summary.still_spooled += len(a.spool)
            summary.inference_p99_ms = max(summary.inference_p99_ms, t["inference_latency_ms"]["p99"])
            drops.update(t["drops"])
            fires.update(t["fires"])
        summary.drops, summary.fires = dict(drops), dict(fires)
        return summary
    finally:
        if tmp is not None:
            tmp.cleanup()


def _channel_root(lake: Lake, channel: str) -> bytes | None:
    """The channel's root v1, what a cart is provisioned with at the factory; None: no channel."""
    from edge_agent.contract.layout import release_metadata_prefix
    from edge_agent.lake import ObjectNotFound

    try:
        return lake.get(f"{release_metadata_prefix(channel)}/1.root.json")
    except ObjectNotFound:
        return None


def _updater(lake: Lake, channel: str, root: bytes, device: str, model_dir: Path, work: Path):
    from edge_agent.ota.updater import OtaConfig, OtaUpdater

    # probation: the first 100 live frames (10 s at the fleet's 10 fps) on the new model
    return OtaUpdater(lake, OtaConfig(device_id=device, channel=channel, model_dir=model_dir,
                                      state_dir=work / "ota" / device, trusted_root=root,
                                      probation_frames=100))


def _drive(agents: list[Agent], feeds: list[Iterator[Frame]], n_frames: int, progress: bool) -> None:
    from tqdm import tqdm

    live = list(zip(agents, feeds, strict=True))
    with tqdm(total=n_frames * len(agents), unit="frame", disable=not progress,
              desc="fleet") as bar:
        while live:
            still = []
            for agent, feed in live:
                frame = next(feed, None)
                if frame is None:
                    continue
                agent.process(frame)
                bar.update(1)
                still.append((agent, feed))
            live = still
            if bar.n % 200 < len(agents):
                t = [a.telemetry.totals for a in agents]
                bar.set_postfix(captured=sum(x.captures for x in t),
                                uploaded=sum(x.uploaded_clips for x in t),
                                dropped=sum(sum(x.drops.values()) for x in t))
