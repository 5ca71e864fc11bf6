"""Ground truth of a simulated fleet day, for evaluation code only (tests, benchmarks, the simulated
annotator): the same carts, sessions and clocks as `simulate_fleet`, replayed with their truth.

Depot frames carry `device_id` and `captured_at` (the frame's wall clock on the device), which is
exactly what the fleet stamped, so the lookup key is (device id, wall clock in milliseconds).
"""

from __future__ import annotations

from datetime import date, datetime

from flywheel.fleet.runner import cart_plan, cart_sim_frames
from flywheel.sim.session import FrameTruth


def truth_key(device_id: str, wall: datetime) -> tuple[str, int]:
    return device_id, round(wall.timestamp() * 1000)


def fleet_truth(carts: int, minutes: float, seed: int = 0, day: date | str | None = None,
                stores: int = 3, fps: float = 10.0, world_seed: int | None = None
                ) -> dict[tuple[str, int], FrameTruth]:
    """{(device id, wall ms): truth} for every frame `simulate_fleet` with the same arguments fed
    its carts (images are rendered again: a few ms per frame)."""
    from flywheel.sim import default_world

    day = date.fromisoformat(day) if isinstance(day, str) else day
    world = default_world(seed if world_seed is None else world_seed, stores)
    n_frames = max(1, int(round(minutes * 60 * fps)))
    out: dict[tuple[str, int], FrameTruth] = {}
    for i, (store, device, start) in enumerate(cart_plan(world, carts, day)):
        for sf, _t, wall in cart_sim_frames(world, store, i, seed, n_frames, start):
            out[truth_key(device, wall)] = sf.truth
    return out
