"""A simulated fleet in privacy ("updates") mode: real agents that never capture a clip, learn from
their own insertions and join the Flower rounds announced (signed) in a release channel, over
127.0.0.1.

Unlike `simulate_fleet`, the agents stay alive after driving their frames, so a round (the Dagster
asset `federated_round`, or `flywheel.federated.pipeline.federated_round`) can run against them;
`close()` stops them. Every cart runs the registry's production model (the round adapts its head).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

from edge_agent.agent import Agent
from edge_agent.capture.spool import Spool
from edge_agent.config import CaptureConfig, FederatedConfig, UploadConfig
from edge_agent.lake import Lake
from edge_agent.model import DeviceModel
from edge_agent.sources import Frame
from edge_agent.triggers.rules import build_rule_set
from flywheel.federated.devices import register_device
from flywheel.fleet.bootstrap import install_registry_model
from flywheel.fleet.runner import DEFAULT_RULES, _cart_frames, _drive, cart_plan
from flywheel.learner.registry import production_model_id


class FederatedFleet:
    def __init__(self, lake: Lake, channel: str, trusted_root: bytes, carts: int = 3, seed: int = 0,
                 stores: int = 3, work_dir: str | Path | None = None, model_id: str | None = None,
                 day: date | None = None, retry_s: float = 0.5, mode: str = "updates",
                 check_s: float = 0.5) -> None:
        from flywheel.sim import default_world

        self.world = default_world(seed, stores)
        self.seed = seed
        self._tmp = tempfile.TemporaryDirectory(prefix="fedfleet-") if work_dir is None else None
        work = Path(work_dir or self._tmp.name)
        self.work = work
        model_id = model_id or production_model_id(lake)
        if model_id is None:
            raise ValueError("no production model in the registry for the carts to run")
        self.model_id = model_id
        rules = build_rule_set(DEFAULT_RULES["version"], DEFAULT_RULES["rules"])
        self.plan = cart_plan(self.world, carts, day or datetime.now(UTC).date())
        self.agents: list[Agent] = []
        root = work / "root.json"  # provisioned at the factory: the channel's trust anchor
        root.parent.mkdir(parents=True, exist_ok=True)
        root.write_bytes(trusted_root)
        for store, device, _start in self.plan:
            model_dir = install_registry_model(lake, work / "model" / device, model_id)
            self.agents.append(Agent(
                device_id=device, store_id=store, model=DeviceModel(model_dir), rules=rules,
                spool=Spool(work / "spool" / device, cap_bytes=256 * 1024 * 1024), lake=lake,
                capture=CaptureConfig(encoders=[], isolation="thread"),
                upload=UploadConfig(mode=mode, backoff_base_s=0.1, backoff_cap_s=2.0),
                status_interval_s=3600.0,
                federated=FederatedConfig(channel=channel, trusted_root=str(root), retry_s=retry_s,
                                          state_dir=str(work / "federated" / device),
                                          check_s=check_s)).start())
        for agent in self.agents:  # provisioning: the fleet registers each cart's own key
            register_device(lake, agent.device_id, agent.federated.public_key)
        self._feeds: list[Iterator[Frame]] | None = None
        self.counter: Counter = Counter()

    def drive(self, minutes: float, fps: float = 10.0, progress: bool = False) -> int:
        """Feed each cart `minutes` of simulated sessions (continuing where the last call ended)."""
        n = max(1, int(round(minutes * 60 * fps)))
        if self._feeds is None:
            self._feeds = [_cart_frames(self.world, store, i, self.seed, 10**9, start, self.counter)
                           for i, (store, _d, start) in enumerate(self.plan)]
        feeds = [_take(f, n) for f in self._feeds]
        _drive(self.agents, feeds, n, progress)
        return n * len(self.agents)

    def samples(self) -> dict[str, int]:
        return {a.device_id: len(a.federated.store) for a in self.agents if a.federated}

    def close(self) -> list[dict]:
        totals = [a.close() for a in self.agents]
        if self._tmp is not None:
            self._tmp.cleanup()
        return totals

    def __enter__(self) -> FederatedFleet:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _take(it: Iterator[Frame], n: int) -> Iterator[Frame]:
    for _ in range(n):
        f = next(it, None)
        if f is None:
            return
        yield f
