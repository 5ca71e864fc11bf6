"""A cart session as a time series: idle frames, hand motion, item insertions, weight, location.

What a device sees (`DeviceFrame`: image, t, weight_g, location) is kept apart from the ground
truth (`FrameTruth`), so device-side code under test can be handed only the former.

Timeline of one insertion (10 fps by default):
    idle (cart may move)  ->  approach (arm brings the item in from an edge, fast: motion blur)
    ->  hold (item held up, turned: the barcode is in view only while the back faces the camera)
    ->  drop (item falls into the basket)  ->  retract (empty hand leaves; the weight steps here)
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from flywheel.sim.catalog import Product
from flywheel.sim.conditions import (
    Conditions,
    add_glare,
    apply_lut,
    defocus,
    defocus_rgba,
    light_lut,
    motion_blur_region,
)
from flywheel.sim.scene import (
    CART_SCALE,
    DROP_SCALE,
    HOLD_SCALE,
    Box,
    Layer,
    composite,
    damage,
    rot_box,
    rot_point,
)
from flywheel.sim.stores import MANUAL

if TYPE_CHECKING:  # a session draws from a world; the world module builds sessions
    from flywheel.sim.world import StoreWorld

WEIGHT_NOISE_G = 3.0  # std of the load-cell reading
CART_SPEED_M_PER_FRAME = 0.08  # ~0.8 m/s walking speed at 10 fps
GRIP_OVERLAP = 8  # px of the item edge covered by the fingers
# arm direction -> rotation of the hand sprite (drawn entering from the bottom)
SIDE_ROT = {"bottom": 0, "right": 1, "left": 3}


@dataclass(frozen=True)
class Location:
    aisle: str
    position_m: float  # metres along the aisle


@dataclass(frozen=True)
class DeviceFrame:
    """Exactly what the cart's device gets from its sensors."""

    image: np.ndarray  # HxWx3 uint8 RGB
    t: float  # seconds since session start
    weight_g: float  # load-cell reading (noisy)
    location: Location


@dataclass(frozen=True)
class FrameTruth:
    sku: str | None  # EAN-13 of the item being inserted and visible, else None
    item_box: tuple[float, float, float, float] | None  # visible item extent, x1 y1 x2 y2 pixels
    hand_box: tuple[float, float, float, float] | None
    is_empty: bool  # no item being inserted in view (a hand alone may be present)
    conditions: dict[str, float]  # degradations actually applied to this frame, 0..1 each
    phase: str  # idle | approach | hold | drop | retract
    face: str | None  # front | back of the visible item
    barcode_in_view: bool  # whole barcode inside the frame and not under the hand
    cart_skus: tuple[str, ...]  # items lying in the basket
    cart_weight_g: float  # exact weight of the basket content


@dataclass(frozen=True)
class SimFrame:
    frame_id: str
    session_id: str
    device_id: str
    store: str  # "manual" for the lab collection
    distribution: str  # "manual" | "production"
    index: int
    device: DeviceFrame
    truth: FrameTruth


@dataclass
class _Insertion:
    product: Product
    side: str
    rot: int  # item rotation (k * 90 deg CCW)
    faces: list[str]  # pose per hold frame
    hold_xy: tuple[float, float]
    cart_xy: tuple[float, float]
    cart_rot: int
    cart_face: str
    damaged: bool
    n_approach: int
    n_hold: int
    n_retract: int
    idle_before: int
    hand: int


@dataclass
class _Step:
    phase: str
    ins: int  # insertion index or -1
    item_xy: tuple[float, float] | None = None  # item centre
    scale: float = HOLD_SCALE
    face: str = "front"
    grip: bool = True
    hand_xy: tuple[float, float] | None = None  # grip point of the hand
    velocity: tuple[float, float] = (0.0, 0.0)  # px per frame of the moving things
    aisle: str = ""
    position_m: float = 0.0
    cart_n: int = 0  # how many inserted items are in the basket at this frame
    glare_on_item: bool = False
    extra: dict = field(default_factory=dict)


def _session_id(world_seed: int, store: str, seed: int) -> str:
    h = hashlib.blake2b(f"{world_seed}/{store}/{seed}".encode(), digest_size=6).hexdigest()
    return f"s{h}"


class CartSession:
    """One shopper's trip (or one lab recording). Iterating yields `SimFrame`s; iterating twice
    yields byte-identical frames."""

    def __init__(
        self,
        world: StoreWorld,
        store: str,
        seed: int,
        n_items: int | None = None,
        skus: list[str] | None = None,
        fps: float = 10.0,
        conditions: Conditions | None = None,
    ) -> None:
        self.world, self.store, self.seed, self.fps = world, store, seed, fps
        self.profile = world.profiles[store]
        self.distribution = self.profile.distribution
        self.session_id = _session_id(world.seed, store, seed)
        self._seeds = np.random.SeedSequence([world.seed, zlib.crc32(store.encode()), seed])
        plan_ss, self._render_ss, self._damage_ss = self._seeds.spawn(3)
        rng = np.random.default_rng(plan_ss)
        p = self.profile
        self.device_id = (
            f"lab-cart-{int(rng.integers(1, 3)):02d}"
            if store == MANUAL
            else f"cart-{store}-{int(rng.integers(1, 9)):02d}"
        )
        self.conditions = conditions if conditions is not None else p.sample_conditions(rng)
        available = world.catalog.available_in(store)
        core = [q for q in available if q.store_specific_to is None]
        special = [q for q in available if q.store_specific_to is not None]
        if skus is not None:
            products = [world.catalog.by_ean(s) for s in skus]
        else:
            n = n_items if n_items is not None else int(rng.integers(p.n_items[0], p.n_items[1] + 1))
            products = []
            for _ in range(n):
                pool = special if special and rng.uniform() < 0.3 else core
                products.append(pool[int(rng.integers(len(pool)))])
        n_pre = int(rng.integers(p.preloaded[0], p.preloaded[1] + 1))
        self.preloaded = [core[int(rng.integers(len(core)))] for _ in range(n_pre)]
        self.products = products
        self._plan(rng)

    # ---------------------------------------------------------------- planning (numbers only)
    def _plan(self, rng: np.random.Generator) -> None:
        W, H = self.world.width, self.world.height
        p, c = self.profile, self.conditions
        manual = self.distribution == MANUAL
        self.insertions: list[_Insertion] = []
        for prod in self.products:
            rot = 0 if manual and rng.uniform() < 0.6 else int(rng.choice(4, p=[0.4, 0.2, 0.25, 0.15]))
            n_hold = int(rng.integers(5, 9) if manual else rng.integers(2, 7))
            first = "front" if rng.uniform() < 0.5 else "back"
            other = "back" if first == "front" else "front"
            flip_at = int(rng.integers(1, n_hold)) if rng.uniform() < 0.7 else n_hold
            faces = [first if i < flip_at else other for i in range(n_hold)]
            j = p.placement_jitter
            hx = float(np.clip(W / 2 + rng.normal(0, j * W), 0.22 * W, 0.78 * W))
            hy = float(np.clip(H * 0.45 + rng.normal(0, j * H), 0.3 * H, 0.62 * H))
            self.insertions.append(
                _Insertion(
                    product=prod,
                    side=str(rng.choice(p.entry_sides)),
                    rot=rot,
                    faces=faces,
                    hold_xy=(hx, hy),
                    cart_xy=(float(rng.uniform(0.22, 0.78) * W), float(rng.uniform(0.3, 0.85) * H)),
                    cart_rot=int(rng.integers(4)),
                    cart_face=str(rng.choice(["front", "back"])),
                    damaged=bool(rng.uniform() < c.damage),
                    n_approach=int(rng.integers(4, 7) if manual else rng.integers(2, 5)),
                    n_hold=n_hold,
                    n_retract=int(rng.integers(2, 4)),
                    idle_before=int(rng.integers(p.idle_frames[0], p.idle_frames[1] + 1)),
                    hand=int(rng.integers(len(self.world.hands))),
                )
            )
        self.idle_after = int(rng.integers(p.idle_frames[0], p.idle_frames[1] + 1))
        # clutter and glare placement, fixed for the session
        n_clutter = int(round(c.clutter * 5 + rng.uniform(-0.5, 0.5)))
        self.clutter = [
            (
                int(rng.integers(len(self.world.clutter))),
                int(rng.uniform(0.1, 0.9) * W),
                int(rng.uniform(0.2, 0.95) * H),
            )
            for _ in range(max(0, n_clutter))
        ]
        self.strap = int(rng.integers(2)) if rng.uniform() < c.clutter - 0.3 else None
        self.strap_xy = (int(rng.uniform(0.05, 0.9) * W), int(rng.uniform(0.0, 0.1) * H))
        self.glare_xy = (int(rng.uniform(0.2, 0.8) * W), int(rng.uniform(0.2, 0.8) * H))
        self.cart_pre_xy = [
            (float(rng.uniform(0.2, 0.8) * W), float(rng.uniform(0.35, 0.9) * H), int(rng.integers(4)))
            for _ in self.preloaded
        ]
        self.steps = self._timeline(rng)

    def _item_size(self, ins: _Insertion, scale: float, face: str) -> tuple[int, int]:
        w, h = self.world.sprite(ins.product.ean, face, scale).size
        return (h, w) if ins.rot % 2 else (w, h)

    def _grip_from_item(self, ins: _Insertion, xy: tuple[float, float]) -> tuple[float, float]:
        iw, ih = self._item_size(ins, HOLD_SCALE, "front")
        x, y = xy
        if ins.side == "bottom":
            return (x, y + ih / 2 - GRIP_OVERLAP)
        if ins.side == "left":
            return (x - iw / 2 + GRIP_OVERLAP, y)
        return (x + iw / 2 - GRIP_OVERLAP, y)

    def _entry_point(self, ins: _Insertion) -> tuple[float, float]:
        """Item centre on the first approach frame: mostly outside the frame edge."""
        W, H = self.world.width, self.world.height
        iw, ih = self._item_size(ins, HOLD_SCALE, "front")
        hx, hy = ins.hold_xy
        if ins.side == "bottom":
            return (hx, H + 0.15 * ih)
        if ins.side == "left":
            return (-0.15 * iw, hy)
        return (W + 0.15 * iw, hy)

    def _timeline(self, rng: np.random.Generator) -> list[_Step]:
        aisles = self.profile.aisles
        steps: list[_Step] = []
        aisle = aisles[self.products[0].category] if self.products else next(iter(aisles.values()))
        pos = float(rng.uniform(0, 3))
        glare_p = self.conditions.glare

        def idle(n: int, cart_n: int, next_aisle: str | None) -> None:
            nonlocal aisle, pos
            for i in range(n):
                if next_aisle is not None and next_aisle != aisle and i == n // 2:
                    aisle, pos = next_aisle, float(rng.uniform(0, 1))
                pos += CART_SPEED_M_PER_FRAME * float(rng.uniform(0.6, 1.2))
                steps.append(_Step("idle", -1, aisle=aisle, position_m=round(pos, 3), cart_n=cart_n))

        def ease(u: float) -> float:
            return 1 - (1 - u) ** 2

        for k, ins in enumerate(self.insertions):
            idle(ins.idle_before, k, aisles[ins.product.category])
            here = dict(aisle=aisle, position_m=round(pos, 3), cart_n=k)
            start, hold = self._entry_point(ins), ins.hold_xy
            prev = start
            for i in range(ins.n_approach):
                u = ease(i / max(1, ins.n_approach - 1))
                xy = (start[0] + (hold[0] - start[0]) * u, start[1] + (hold[1] - start[1]) * u)
                vel = (xy[0] - prev[0], xy[1] - prev[1]) if i else (
                    (hold[0] - start[0]) / ins.n_approach, (hold[1] - start[1]) / ins.n_approach)
                steps.append(_Step("approach", k, xy, face=ins.faces[0], velocity=vel,
                                   hand_xy=self._grip_from_item(ins, xy), **here))
                prev = xy
            for i, face in enumerate(ins.faces):
                jit = 1.5 if self.distribution == MANUAL else 4.0
                xy = (hold[0] + float(rng.normal(0, jit)), hold[1] + float(rng.normal(0, jit)))
                turning = i > 0 and face != ins.faces[i - 1]  # the item is being flipped: blurry
                vel = (12.0, 0.0) if turning else (xy[0] - prev[0], xy[1] - prev[1])
                steps.append(_Step("hold", k, xy, face=face, velocity=vel,
                                   hand_xy=self._grip_from_item(ins, xy),
                                   glare_on_item=bool(rng.uniform() < glare_p * 0.6), **here))
                prev = xy
            last_face = ins.faces[-1]
            grip = self._grip_from_item(ins, prev)
            drop_xy = ((prev[0] + ins.cart_xy[0]) / 2, (prev[1] + ins.cart_xy[1]) / 2 + 10)
            steps.append(_Step("drop", k, drop_xy, scale=DROP_SCALE, face=last_face, grip=False,
                               hand_xy=grip, velocity=(drop_xy[0] - prev[0], drop_xy[1] - prev[1]),
                               **here))
            # the weight steps once the item lies in the basket (cart_n = k + 1 from here on)
            here["cart_n"] = k + 1
            exit_grip = self._grip_from_item(ins, start)
            for i in range(ins.n_retract):
                u = (i + 1) / ins.n_retract
                hxy = (grip[0] + (exit_grip[0] - grip[0]) * u, grip[1] + (exit_grip[1] - grip[1]) * u)
                vel = ((exit_grip[0] - grip[0]) / ins.n_retract, (exit_grip[1] - grip[1]) / ins.n_retract)
                steps.append(_Step("retract", k, None, hand_xy=hxy, velocity=vel, **here))
        idle(self.idle_after, len(self.insertions), None)
        return steps

    def __len__(self) -> int:
        return len(self.steps)

    # ---------------------------------------------------------------- rendering
    def _prepare(self) -> None:
        """Bake lighting and defocus into this session's assets once (the per-frame path only
        composites)."""
        w, c = self.world, self.conditions
        self._lut = light_lut(c.low_light, c.color_cast, self.profile.cast_gains, self.profile.base_gain)
        self._layers: dict[tuple, Layer] = {}
        self._hands: dict[int, tuple[Layer, tuple[int, int]]] = {}
        self._damage_rng = np.random.default_rng(self._damage_ss)
        self._damaged: dict[tuple[str, str, float], np.ndarray] = {}
        base = w.basket.copy()
        for idx, x, y in self.clutter:
            lay = Layer(w.clutter[idx])
            composite(base, lay, x - lay.w // 2, y - lay.h // 2)
        for prod, (x, y, k) in zip(self.preloaded, self.cart_pre_xy, strict=True):
            lay = Layer(w.sprite(prod.ean, "front", CART_SCALE).rgba).rot90(k)
            composite(base, lay, int(x) - lay.w // 2, int(y) - lay.h // 2)
        self._raw_base = base
        self._cart_n = -1
        self._bg: np.ndarray | None = None
        self._strap = None
        if self.strap is not None:
            self._strap = self._lit_layer(w.straps[self.strap])

    def _lit_layer(self, rgba: np.ndarray) -> Layer:
        lit = rgba.copy()
        lit[..., :3] = apply_lut(rgba[..., :3], self._lut)
        return Layer(defocus_rgba(lit, self.conditions.defocus))

    def _sprite_rgba(self, ins: _Insertion, face: str, scale: float) -> np.ndarray:
        rgba = self.world.sprite(ins.product.ean, face, scale).rgba
        if not ins.damaged:
            return rgba
        key = (ins.product.ean, face, scale)
        if key not in self._damaged:
            self._damaged[key] = damage(rgba, self._damage_rng, self.conditions.damage)
        return self._damaged[key]

    def _item_layer(self, ins: _Insertion, face: str, scale: float) -> Layer:
        key = (ins.product.ean, face, scale, ins.damaged)
        lay = self._layers.get(key)
        if lay is None:
            lay = self._lit_layer(self._sprite_rgba(ins, face, scale))
            self._layers[key] = lay
        return lay.rot90(ins.rot)

    def _hand_layer(self, ins: _Insertion) -> tuple[Layer, tuple[int, int]]:
        if ins.hand not in self._hands:
            rgba, grip = self.world.hands[ins.hand]
            self._hands[ins.hand] = (self._lit_layer(rgba), grip)
        lay, grip = self._hands[ins.hand]
        pad = (lay.w - self.world.hands[ins.hand][0].shape[1]) // 2  # defocus padding
        k = SIDE_ROT[ins.side]
        g = rot_point((grip[0] + pad, grip[1] + pad), lay.w, lay.h, k)
        return lay.rot90(k), g

    def _background(self, cart_n: int) -> np.ndarray:
        if cart_n != self._cart_n:
            base = self._raw_base.copy()
            for ins in self.insertions[:cart_n]:
                rgba = self._sprite_rgba(ins, ins.cart_face, CART_SCALE)
                lay = Layer(rgba).rot90(ins.cart_rot)
                x, y = ins.cart_xy
                composite(base, lay, int(x) - lay.w // 2, int(y) - lay.h // 2)
            self._bg = defocus(apply_lut(base, self._lut), self.conditions.defocus)
            self._cart_n = cart_n
        assert self._bg is not None
        return self._bg

    def __iter__(self) -> Iterator[SimFrame]:
        self._prepare()
        w, c = self.world, self.conditions
        rng = np.random.default_rng(self._render_ss)
        base_weight = sum(q.weight_g for q in self.preloaded)
        cum = np.cumsum([0.0] + [ins.product.weight_g for ins in self.insertions]) + base_weight
        pre_skus = tuple(q.ean for q in self.preloaded)
        glare_blob = w.glare[22 if c.glare < 0.5 else 32]
        for idx, st in enumerate(self.steps):
            frame = self._background(st.cart_n).copy()
            ins = self.insertions[st.ins] if st.ins >= 0 else None
            item_box: Box | None = None
            hand_box: Box | None = None
            bc_rect: Box | None = None
            applied = c.as_dict()
            applied["motion_blur"] = 0.0
            applied["damage"] = 0.0
            if ins is not None and st.item_xy is not None:
                lay = self._item_layer(ins, st.face, st.scale)
                x = int(round(st.item_xy[0])) - lay.w // 2
                y = int(round(st.item_xy[1])) - lay.h // 2
                item_box = composite(frame, lay, x, y)
                spr = w.sprite(ins.product.ean, st.face, st.scale)
                if spr.barcode_rect is not None and st.phase == "hold":
                    pad = (lay.w - (spr.size[1] if ins.rot % 2 else spr.size[0])) // 2
                    r = spr.barcode_rect
                    r = (r[0] + pad, r[1] + pad, r[2] + pad, r[3] + pad)
                    (bx1, by1, bx2, by2) = rot_box(r, lay.w if ins.rot % 2 == 0 else lay.h,
                                                   lay.h if ins.rot % 2 == 0 else lay.w, ins.rot)
                    bc_rect = (x + bx1, y + by1, x + bx2, y + by2)
                if ins.damaged and item_box is not None:
                    applied["damage"] = c.damage
            if ins is not None and st.hand_xy is not None:
                hl, g = self._hand_layer(ins)
                hx = int(round(st.hand_xy[0])) - g[0]
                hy = int(round(st.hand_xy[1])) - g[1]
                if not st.grip:  # hand opens and pulls back a little as the item drops
                    hy += 8 if ins.side == "bottom" else 0
                hand_box = composite(frame, hl, hx, hy)
                barcode_ok = bc_rect is not None and self._barcode_clear(bc_rect, hl, hx, hy)
            else:
                barcode_ok = bc_rect is not None and self._inside(bc_rect)
            if self._strap is not None:
                sx, sy = self.strap_xy
                if self.strap == 0:
                    composite(frame, self._strap, 0, sy)
                else:
                    composite(frame, self._strap, sx, 0)
            # motion blur over the moving hand + item, along the dominant motion axis
            speed = float(np.hypot(*st.velocity))
            blur_len = int(c.motion_blur * speed * 0.5)
            moving = [b for b in (item_box, hand_box) if b is not None]
            if blur_len > 1 and moving:
                x1 = max(0, min(b[0] for b in moving) - blur_len)
                y1 = max(0, min(b[1] for b in moving) - blur_len)
                x2 = min(w.width, max(b[2] for b in moving) + blur_len)
                y2 = min(w.height, max(b[3] for b in moving) + blur_len)
                axis = 1 if abs(st.velocity[0]) >= abs(st.velocity[1]) else 0
                motion_blur_region(frame[y1:y2, x1:x2], min(blur_len, 21), axis)
                applied["motion_blur"] = c.motion_blur
            if c.glare > 0.05:
                gx, gy = self.glare_xy
                if st.glare_on_item and item_box is not None:
                    gx = (item_box[0] + item_box[2]) // 2 + int(rng.integers(-15, 16))
                    gy = (item_box[1] + item_box[3]) // 2 + int(rng.integers(-10, 11))
                add_glare(frame, glare_blob, gx, gy, c.glare)
            flicker = int(round(rng.normal(0, 3.0 * c.color_cast))) if c.color_cast > 0 else 0
            frame = w.noise.apply(frame, c.noise, rng, flicker)
            cart_weight = float(cum[st.cart_n])
            weight = cart_weight + float(rng.normal(0, WEIGHT_NOISE_G))
            sku = ins.product.ean if (ins is not None and item_box is not None) else None
            truth = FrameTruth(
                sku=sku,
                item_box=_fbox(item_box) if sku else None,
                hand_box=_fbox(hand_box),
                is_empty=sku is None,
                conditions=applied,
                phase=st.phase,
                face=st.face if sku else None,
                barcode_in_view=bool(sku and barcode_ok),
                cart_skus=pre_skus + tuple(i.product.ean for i in self.insertions[: st.cart_n]),
                cart_weight_g=cart_weight,
            )
            dev = DeviceFrame(
                image=frame,
                t=round(idx / self.fps, 4),
                weight_g=round(weight, 1),
                location=Location(st.aisle, st.position_m),
            )
            yield SimFrame(
                frame_id=f"{self.session_id}-{idx:04d}",
                session_id=self.session_id,
                device_id=self.device_id,
                store=self.store,
                distribution=self.distribution,
                index=idx,
                device=dev,
                truth=truth,
            )

    def frames(self) -> list[SimFrame]:
        return list(self)

    def _inside(self, r: Box) -> bool:
        return r[0] >= 0 and r[1] >= 0 and r[2] <= self.world.width and r[3] <= self.world.height

    def _barcode_clear(self, r: Box, hand: Layer, hx: int, hy: int) -> bool:
        """Whole barcode in frame and at least one scan line across it not under the hand (a
        reader needs one clean line through all bars, the rest may be covered)."""
        if not self._inside(r):
            return False
        x1, y1 = max(r[0], hx), max(r[1], hy)
        x2, y2 = min(r[2], hx + hand.w), min(r[3], hy + hand.h)
        if x1 >= x2 or y1 >= y2:
            return True
        covered = np.zeros((r[3] - r[1], r[2] - r[0]), bool)
        covered[y1 - r[1] : y2 - r[1], x1 - r[0] : x2 - r[0]] = (
            hand.inv[y1 - hy : y2 - hy, x1 - hx : x2 - hx, 0] < 128
        )
        # the label's long side is the scan direction (bars plus quiet zones)
        lines_clear = ~covered.any(axis=1 if covered.shape[1] >= covered.shape[0] else 0)
        return bool(lines_clear.sum() >= 3)


def _fbox(b: Box | None) -> tuple[float, float, float, float] | None:
    return None if b is None else (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
