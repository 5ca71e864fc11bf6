"""Production degradations with a strength in 0..1 each, implemented as cheap numpy operations.

The expensive parts (lighting, defocus) are baked into the session's sprites and background once;
per frame only motion blur on the moving region, a glare blob and a noise tile at a random offset
are applied, which keeps frame generation far above the demo's needs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

CONDITION_NAMES: tuple[str, ...] = (
    "low_light",  # 0 = studio bright, 1 = very dim aisle
    "color_cast",  # strength of the store's light colour (direction comes from the store profile)
    "motion_blur",  # blur of the moving hand + item, scaled by its speed
    "defocus",  # lens defocus of the whole view
    "noise",  # sensor noise (sigma up to ~16 grey levels)
    "glare",  # specular reflections of ceiling lights
    "damage",  # crushed, torn, scuffed packaging
    "clutter",  # non-product objects in the basket and over the view
)


@dataclass(frozen=True)
class Conditions:
    low_light: float = 0.0
    color_cast: float = 0.0
    motion_blur: float = 0.0
    defocus: float = 0.0
    noise: float = 0.0
    glare: float = 0.0
    damage: float = 0.0
    clutter: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    def replace(self, **kw: float) -> Conditions:
        d = self.as_dict()
        d.update(kw)
        return Conditions(**d)

    @staticmethod
    def names() -> tuple[str, ...]:
        return tuple(f.name for f in fields(Conditions))


assert Conditions.names() == CONDITION_NAMES


def light_lut(
    low_light: float,
    color_cast: float,
    cast_gains: tuple[float, float, float],
    base_gain: float = 1.0,
) -> np.ndarray:
    """Per-channel 256-entry LUT (3x256 uint8): exposure, colour cast, and the crushed shadows of
    a dim scene (gamma > 1)."""
    x = np.arange(256, dtype=np.float32) / 255.0
    gain = base_gain * (1.0 - 0.72 * low_light)
    gamma = 1.0 + 0.6 * low_light
    out = np.empty((3, 256), np.uint8)
    for c in range(3):
        g = gain * (1.0 + color_cast * (cast_gains[c] - 1.0))
        out[c] = np.clip(255.0 * np.clip(x * g, 0, 1.5) ** gamma, 0, 255).astype(np.uint8)
    return out


def apply_lut(rgb: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Apply a 3x256 LUT to an HxWx3 uint8 image (one fancy-index over the flat LUT)."""
    idx = rgb.astype(np.uint16)
    idx[..., 1] += 256
    idx[..., 2] += 512
    return lut.reshape(-1)[idx]


def box_blur(img: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """Box filter of width 2*radius+1 along `axis` via a cumulative sum (O(1) per pixel), edges
    clamped. Works on any dtype; returns the input dtype."""
    if radius <= 0:
        return img
    a = np.moveaxis(img, axis, 0).astype(np.float32)
    n = a.shape[0]
    pad = np.concatenate([np.repeat(a[:1], radius + 1, 0), a, np.repeat(a[-1:], radius, 0)], 0)
    c = np.cumsum(pad, axis=0)
    k = 2 * radius + 1
    out = (c[k : k + n] - c[:n]) / k
    if np.issubdtype(img.dtype, np.integer):
        out = np.rint(out)
    return np.moveaxis(out.astype(img.dtype), 0, axis)


def defocus_passes(strength: float) -> float:
    """Binomial [1 2 1] passes per axis (fractional: the last one is blended in); n passes ~ a
    Gaussian of sigma sqrt(n / 2). Calibrated on zxing: up to ~0.3 a 1 px/module barcode still
    decodes when nothing else degrades it, from ~0.35 on it does not."""
    return 8.0 * strength**2


def binomial_blur(img: np.ndarray, passes: float) -> np.ndarray:
    """Separable [1 2 1]/4 filter repeated `passes` times on both image axes (edges clamped);
    a fractional remainder blends in one more pass. Returns float32."""
    full = int(passes)
    frac = float(passes) - full
    out = _binomial(img.astype(np.float32, copy=True), full)
    if frac > 1e-3:
        out = out * (1.0 - frac) + _binomial(out, 1) * frac
    return out


def _binomial(out: np.ndarray, passes: int) -> np.ndarray:
    for _ in range(passes):
        for axis in (0, 1):
            a = np.moveaxis(out, axis, 0)
            nxt = a * 0.5
            nxt[1:] += a[:-1] * 0.25
            nxt[:-1] += a[1:] * 0.25
            nxt[0] += a[0] * 0.25
            nxt[-1] += a[-1] * 0.25
            out = np.moveaxis(nxt, 0, axis)
    return out


def defocus(img: np.ndarray, strength: float) -> np.ndarray:
    """Lens blur of a uint8 image (returns uint8); applied per session to the background."""
    n = defocus_passes(strength)
    if n < 1e-3:
        return img
    return np.clip(np.rint(binomial_blur(img, n)), 0, 255).astype(np.uint8)


def defocus_margin(strength: float) -> int:
    return int(np.ceil(defocus_passes(strength)))


def defocus_rgba(rgba: np.ndarray, strength: float) -> np.ndarray:
    """Defocus a sprite on premultiplied colour so its edges soften without dark fringes; the
    sprite grows by `defocus_margin(strength)` pixels on each side."""
    n = defocus_passes(strength)
    if n < 1e-3:
        return rgba
    p = defocus_margin(strength)
    a = np.pad(rgba, ((p, p), (p, p), (0, 0))).astype(np.float32)
    alpha = a[..., 3:4] / 255.0
    a[..., :3] *= alpha  # premultiply so transparent black does not bleed into the package
    a = binomial_blur(a, n)
    alpha = a[..., 3:4] / 255.0
    a[..., :3] = np.where(alpha > 1e-3, a[..., :3] / np.maximum(alpha, 1e-3), 0)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def motion_blur_region(region: np.ndarray, length: int, axis: int) -> None:
    """In-place motion blur of an HxWx3 uint8 view along `axis` (trailing box of `length` px)."""
    if length <= 1 or region.shape[axis] < 2:
        return
    r = length // 2
    region[...] = box_blur(region, r, axis)


class NoiseBank:
    """Gaussian noise tiles (int16) precomputed per quantized sigma; per frame a random offset view
    is added, which is as random-looking as fresh noise at a fraction of the cost."""

    LEVELS = 8

    def __init__(self, height: int, width: int, seed: int = 0) -> None:
        self.h, self.w = height, width
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5E5]))
        self._unit = rng.standard_normal((2 * height, 2 * width, 3), dtype=np.float32)
        self._tiles: dict[int, np.ndarray] = {}

    @staticmethod
    def sigma(strength: float) -> float:
        return 16.0 * strength

    def level(self, strength: float) -> int:
        return int(round(np.clip(strength, 0, 1) * self.LEVELS))

    def tile(self, level: int) -> np.ndarray:
        t = self._tiles.get(level)
        if t is None:
            sig = self.sigma(level / self.LEVELS)
            t = np.rint(self._unit * sig).astype(np.int16)
            self._tiles[level] = t
        return t

    def apply(self, frame: np.ndarray, strength: float, rng: np.random.Generator, bias: int = 0):
        """frame + noise (+ a global flicker `bias`), clipped; returns a new uint8 array."""
        level = self.level(strength)
        if level == 0 and bias == 0:
            return frame
        f = frame.astype(np.int16)
        if level:
            oy = int(rng.integers(0, self.h))
            ox = int(rng.integers(0, self.w))
            f += self.tile(level)[oy : oy + self.h, ox : ox + self.w]
        if bias:
            f += np.int16(bias)
        np.clip(f, 0, 255, out=f)
        return f.astype(np.uint8)


def glare_blob(radius: int) -> np.ndarray:
    """Soft elliptical highlight (uint16, peak 255) added to the frame for specular glare."""
    y, x = np.mgrid[-radius : radius + 1, -2 * radius : 2 * radius + 1].astype(np.float32)
    d2 = (x / (2 * radius)) ** 2 + (y / radius) ** 2
    blob = 255.0 * np.clip(1.15 - d2, 0, 1) ** 1.5
    return np.minimum(blob, 255).astype(np.uint16)


def add_glare(frame: np.ndarray, blob: np.ndarray, cx: int, cy: int, strength: float) -> None:
    """Saturating additive highlight centred at (cx, cy), in place; blob is clipped to the frame."""
    if strength <= 0:
        return
    H, W = frame.shape[:2]
    bh, bw = blob.shape
    x1, y1 = cx - bw // 2, cy - bh // 2
    fx1, fy1, fx2, fy2 = max(0, x1), max(0, y1), min(W, x1 + bw), min(H, y1 + bh)
    if fx1 >= fx2 or fy1 >= fy2:
        return
    b = blob[fy1 - y1 : fy2 - y1, fx1 - x1 : fx2 - x1]
    region = frame[fy1:fy2, fx1:fx2].astype(np.uint16)
    region += ((b * np.uint16(round(strength * 256))) >> 8)[..., None]
    np.minimum(region, 255, out=region)
    frame[fy1:fy2, fx1:fx2] = region
