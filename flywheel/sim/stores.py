"""Distributions: the studio-like manual collection and per-store production profiles.

Each profile draws a session's condition strengths (mean +- spread, clipped to 0..1), its colour
cast direction, how far from the centre shoppers hold items, and the aisle layout for locations.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from flywheel.sim.catalog import CATEGORIES
from flywheel.sim.conditions import CONDITION_NAMES, Conditions

MANUAL = "manual"
PRODUCTION = "production"


@dataclass(frozen=True)
class StoreProfile:
    name: str  # "manual" for the lab collection, else the store id ("A", "B", ...)
    distribution: str  # MANUAL | PRODUCTION
    strengths: dict[str, tuple[float, float]]  # condition -> (mean, spread) per session
    cast_gains: tuple[float, float, float]  # RGB gains of the light colour at color_cast = 1
    base_gain: float  # exposure of the camera pipeline (manual rigs are over-lit)
    placement_jitter: float  # std of the hold position around the centre, fraction of frame size
    entry_sides: tuple[str, ...]  # where the shopper's arm comes from: bottom, left, right
    n_items: tuple[int, int]  # items inserted per session (inclusive range)
    preloaded: tuple[int, int]  # items already in the cart when the session starts
    idle_frames: tuple[int, int]  # idle frames between insertions
    aisles: dict[str, str]  # category -> aisle id
    description: str = ""

    def sample_conditions(self, rng: np.random.Generator) -> Conditions:
        vals = {}
        for name in CONDITION_NAMES:
            mean, spread = self.strengths.get(name, (0.0, 0.0))
            vals[name] = float(np.clip(mean + spread * rng.uniform(-1, 1), 0.0, 1.0))
        return Conditions(**vals)


def _aisles(store: str, n_aisles: int = 8) -> dict[str, str]:
    rng = np.random.default_rng(zlib.crc32(store.encode()))
    cats = sorted(CATEGORIES)
    order = rng.permutation(len(cats))
    return {cats[int(i)]: f"{store}{1 + k % n_aisles:02d}" for k, i in enumerate(order)}


def manual_profile() -> StoreProfile:
    return StoreProfile(
        name=MANUAL,
        distribution=MANUAL,
        strengths={"noise": (0.04, 0.03), "low_light": (0.0, 0.0), "glare": (0.02, 0.02)},
        cast_gains=(1.0, 1.0, 1.0),
        base_gain=1.12,
        placement_jitter=0.03,
        entry_sides=("bottom",),
        n_items=(2, 4),
        preloaded=(0, 0),
        idle_frames=(3, 6),
        aisles={c: "LAB" for c in CATEGORIES},
        description="lab collection: bright diffuse light, item centred, sharp, core SKUs",
    )


# Hand-written profiles for the first three stores so the demo shows distinct failure modes;
# further stores are drawn from the seed.
_PRESETS: dict[str, dict] = {
    "A": dict(
        strengths={"low_light": (0.55, 0.15), "color_cast": (0.75, 0.2), "motion_blur": (0.5, 0.3),
                   "defocus": (0.3, 0.2), "noise": (0.55, 0.2), "glare": (0.15, 0.15),
                   "damage": (0.3, 0.2), "clutter": (0.35, 0.25)},
        cast_gains=(1.35, 1.0, 0.55),
        description="dim, warm tungsten light, noisy sensor",
    ),
    "B": dict(
        strengths={"low_light": (0.25, 0.15), "color_cast": (0.7, 0.2), "motion_blur": (0.65, 0.3),
                   "defocus": (0.35, 0.25), "noise": (0.3, 0.15), "glare": (0.7, 0.25),
                   "damage": (0.3, 0.2), "clutter": (0.5, 0.3)},
        cast_gains=(0.7, 1.12, 1.3),
        description="cold fluorescent tubes, strong glare, fast shoppers",
    ),
    "C": dict(
        strengths={"low_light": (0.4, 0.2), "color_cast": (0.6, 0.25), "motion_blur": (0.4, 0.3),
                   "defocus": (0.45, 0.25), "noise": (0.65, 0.2), "glare": (0.3, 0.2),
                   "damage": (0.55, 0.25), "clutter": (0.8, 0.2)},
        cast_gains=(1.2, 0.72, 1.15),
        description="cheap camera, magenta LED light, cluttered carts, battered stock",
    ),
}


def production_profile(store: str) -> StoreProfile:
    preset = _PRESETS.get(store)
    if preset is None:  # any further store: a random but fixed profile derived from its name
        rng = np.random.default_rng(zlib.crc32(f"store-{store}".encode()))
        preset = dict(
            strengths={n: (float(rng.uniform(0.2, 0.7)), 0.2) for n in CONDITION_NAMES},
            cast_gains=tuple(float(g) for g in rng.uniform(0.65, 1.35, 3)),
            description="generated store profile",
        )
    return StoreProfile(
        name=store,
        distribution=PRODUCTION,
        base_gain=1.0,
        placement_jitter=0.14,
        entry_sides=("bottom", "bottom", "left", "right"),
        n_items=(3, 7),
        preloaded=(0, 3),
        idle_frames=(5, 18),
        aisles=_aisles(store),
        **preset,
    )


def default_store_names(n: int = 3) -> tuple[str, ...]:
    return tuple(chr(ord("A") + i) for i in range(n))


def build_profiles(stores: tuple[str, ...]) -> dict[str, StoreProfile]:
    out = {MANUAL: manual_profile()}
    out.update({s: production_profile(s) for s in stores})
    return out
