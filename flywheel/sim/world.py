"""The store world: catalog, store profiles and every pre-rendered asset, built once and shared.

A world is fully determined by its seed (the catalog and assets); sessions and datasets take their
own seeds on top, so a frozen test set and the bootstrap data share one catalog.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from flywheel.sim.catalog import Catalog, build_catalog
from flywheel.sim.conditions import NoiseBank, glare_blob
from flywheel.sim.packaging import Sprite, render_back, render_front, scale_sprite
from flywheel.sim.scene import (
    CART_SCALE,
    DROP_SCALE,
    HOLD_SCALE,
    SKIN_TONES,
    SLEEVES,
    render_basket,
    render_clutter,
    render_hand,
    render_strap,
)
from flywheel.sim.session import CartSession
from flywheel.sim.stores import StoreProfile, build_profiles, default_store_names


class StoreWorld:
    def __init__(
        self,
        seed: int = 0,
        stores: int | tuple[str, ...] = 3,
        width: int = 320,
        height: int = 240,
        n_core: int = 21,
        n_store_specific: int = 3,
    ) -> None:
        self.seed = seed
        self.width, self.height = width, height
        self.store_names = default_store_names(stores) if isinstance(stores, int) else tuple(stores)
        self.catalog: Catalog = build_catalog(seed, n_core, self.store_names, n_store_specific)
        self.profiles: dict[str, StoreProfile] = build_profiles(self.store_names)
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xA55E7]))
        self.basket = render_basket(width, height)
        self.hands = [render_hand(t, s) for t, s in zip(SKIN_TONES, SLEEVES, strict=True)]
        self.clutter = render_clutter(rng)
        self.straps = (render_strap(width, height, False), render_strap(width, height, True))
        self.noise = NoiseBank(height, width, seed)
        self.glare = {r: glare_blob(r) for r in (14, 22, 32)}
        self._sprites: dict[tuple[str, str, float], Sprite] = {}

    def sprite(self, ean: str, face: str, scale: float = HOLD_SCALE) -> Sprite:
        """Packaging sprite, rendered on first use and cached (Pillow only runs here)."""
        key = (ean, face, scale)
        s = self._sprites.get(key)
        if s is None:
            if scale == HOLD_SCALE:
                p = self.catalog.by_ean(ean)
                s = render_back(p) if face == "back" else render_front(p)
            else:
                s = scale_sprite(self.sprite(ean, face, HOLD_SCALE), scale)
            self._sprites[key] = s
        return s

    def prerender(self) -> StoreWorld:
        """Render every sprite up front (otherwise done lazily on first use)."""
        for p in self.catalog:
            for face in ("front", "back"):
                for scale in (HOLD_SCALE, DROP_SCALE, CART_SCALE):
                    self.sprite(p.ean, face, scale)
        return self

    def session(self, store: str, seed: int, **kwargs) -> CartSession:
        return CartSession(self, store, seed, **kwargs)

    def sessions(self, store: str, seed: int, n: int, **kwargs) -> Iterator[CartSession]:
        for k in range(n):
            yield self.session(store, seed * 100_003 + k, **kwargs)


_WORLDS: dict[tuple, StoreWorld] = {}


def default_world(seed: int = 0, stores: int | tuple[str, ...] = 3) -> StoreWorld:
    """Shared world per (seed, stores): asset rendering is paid once per process."""
    key = (seed, stores)
    if key not in _WORLDS:
        _WORLDS[key] = StoreWorld(seed=seed, stores=stores)
    return _WORLDS[key]
