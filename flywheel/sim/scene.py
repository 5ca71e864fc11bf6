"""Scene pieces: the wire basket, the shopper's arm, clutter, packaging damage, and compositing.

Everything here is rendered once (Pillow, numpy) and turned into `Layer`s: premultiplied uint16
colour plus inverse alpha, so compositing a sprite into a frame is four integer numpy operations on
the covered region only.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from flywheel.sim.packaging import font

HOLD_SCALE = 1.0  # item held up to the camera
DROP_SCALE = 0.75  # falling into the basket
CART_SCALE = 0.5  # lying in the basket

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 (exclusive), pixels

SKIN_TONES: tuple[tuple[int, int, int], ...] = (
    (241, 194, 167), (224, 172, 138), (198, 134, 98), (160, 104, 72), (118, 74, 50), (88, 56, 40),
)
SLEEVES: tuple[tuple[int, int, int], ...] = (
    (40, 60, 110), (120, 30, 40), (50, 50, 55), (200, 200, 190), (60, 110, 60), (150, 110, 60),
)


class Layer:
    """A sprite prepared for fast alpha compositing (rotations are views, no copies)."""

    __slots__ = ("pre", "inv", "box", "h", "w")

    def __init__(self, rgba: np.ndarray, _arrays: tuple | None = None) -> None:
        if _arrays is not None:
            self.pre, self.inv, self.box = _arrays
        else:
            a = rgba[..., 3:4].astype(np.uint16)
            a = (a * 256 + 127) // 255  # 0..256 so that >> 8 is an exact divide
            self.pre = rgba[..., :3].astype(np.uint16) * a
            self.inv = (256 - a).astype(np.uint16)
            ys, xs = np.nonzero(rgba[..., 3] > 16)
            if len(xs):
                self.box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            else:
                self.box = (0, 0, 0, 0)
        self.h, self.w = self.pre.shape[:2]

    def rot90(self, k: int) -> Layer:
        """Counter-clockwise rotation by k*90 degrees."""
        k %= 4
        if k == 0:
            return self
        return Layer(
            None,  # type: ignore[arg-type]
            (np.rot90(self.pre, k), np.rot90(self.inv, k), rot_box(self.box, self.w, self.h, k)),
        )


def rot_box(box: Box, w: int, h: int, k: int) -> Box:
    """Box of a sprite of size (w, h) after np.rot90(k) (counter-clockwise): (x, y) -> (y, w - x)."""
    x1, y1, x2, y2 = box
    for _ in range(k % 4):
        x1, y1, x2, y2 = y1, w - x2, y2, w - x1
        w, h = h, w
    return (x1, y1, x2, y2)


def rot_point(pt: tuple[int, int], w: int, h: int, k: int) -> tuple[int, int]:
    x, y = pt
    for _ in range(k % 4):
        x, y = y, w - 1 - x
        w, h = h, w
    return (x, y)


def composite(frame: np.ndarray, layer: Layer, x: int, y: int) -> Box | None:
    """Alpha-blend `layer` with its top-left at (x, y) into `frame` in place. Returns the visible
    part of the layer's opaque bounding box in frame coordinates, or None when off screen."""
    H, W = frame.shape[:2]
    fx1, fy1 = max(0, x), max(0, y)
    fx2, fy2 = min(W, x + layer.w), min(H, y + layer.h)
    if fx1 >= fx2 or fy1 >= fy2:
        return None
    sx, sy = fx1 - x, fy1 - y
    region = frame[fy1:fy2, fx1:fx2]
    d = region.astype(np.uint16)
    d *= layer.inv[sy : sy + fy2 - fy1, sx : sx + fx2 - fx1]
    d += layer.pre[sy : sy + fy2 - fy1, sx : sx + fx2 - fx1]
    d >>= 8
    region[...] = d
    bx1, by1, bx2, by2 = layer.box
    bx1, by1 = max(fx1, x + bx1), max(fy1, y + by1)
    bx2, by2 = min(fx2, x + bx2), min(fy2, y + by2)
    if bx1 >= bx2 or by1 >= by2:
        return None
    return (bx1, by1, bx2, by2)


def render_basket(width: int, height: int) -> np.ndarray:
    """Top-down view into a wire shopping-cart basket: floor, side walls and a perspective grid."""
    s = 2  # supersample for antialiased wires
    W, H = width * s, height * s
    y = np.linspace(0, 1, H, dtype=np.float32)[:, None, None]
    floor = np.array([52, 55, 60], np.float32) + 30 * y  # brighter towards the handle camera
    img = Image.fromarray(np.broadcast_to(floor, (H, W, 3)).astype(np.uint8))
    d = ImageDraw.Draw(img)
    # side walls: trapezoids seen at an angle
    wall = (88, 92, 98)
    d.polygon([(0, 0), (int(W * 0.12), int(H * 0.1)), (int(W * 0.12), H), (0, H)], fill=wall)
    d.polygon([(W, 0), (int(W * 0.88), int(H * 0.1)), (int(W * 0.88), H), (W, H)], fill=wall)
    d.polygon([(0, 0), (W, 0), (int(W * 0.88), int(H * 0.1)), (int(W * 0.12), int(H * 0.1))],
              fill=(75, 78, 84))
    wire, shadow = (182, 186, 192), (30, 32, 36)
    vx, vy = W / 2, -H * 1.2  # vanishing point above the frame
    for i in range(-14, 15):
        xb = W / 2 + i * W / 15
        xt = vx + (xb - vx) * (1 - (H * 0.1 - vy) / (H - vy))
        d.line([(xb + 3, H), (xt + 3, H * 0.1)], fill=shadow, width=3)
        d.line([(xb, H), (xt, H * 0.1)], fill=wire, width=3)
    for j in range(12):  # cross wires closer together far from the camera
        t = (j / 11) ** 1.4
        yy = H * 0.1 + t * H * 0.9
        d.line([(0, yy + 3), (W, yy + 3)], fill=shadow, width=3)
        d.line([(0, yy), (W, yy)], fill=wire, width=3)
    for k in range(0, H, 26):  # wall wires
        d.line([(0, k), (W * 0.12, k + H * 0.05)], fill=wire, width=2)
        d.line([(W, k), (W * 0.88, k + H * 0.05)], fill=wire, width=2)
    return np.asarray(img.resize((width, height), Image.Resampling.BOX)).copy()


def render_hand(tone: tuple[int, int, int], sleeve: tuple[int, int, int], length: int = 300):
    """Arm entering from the bottom, palm up top, fingers curled forward. Returns (rgba, grip)
    where grip is the (x, y) point the held item's bottom edge rests on."""
    w = 76
    img = Image.new("RGBA", (w, length), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    skin = tone + (255,)
    dark = tuple(int(c * 0.82) for c in tone) + (255,)
    d.rounded_rectangle([12, 40, 64, length + 20], radius=24, fill=skin)  # forearm
    d.rounded_rectangle([8, 150, 68, length + 20], radius=16, fill=sleeve + (255,))  # sleeve
    d.ellipse([6, 18, 70, 84], fill=skin)  # palm
    for i in range(4):  # fingers wrapping the item edge
        fx = 10 + i * 15
        d.rounded_rectangle([fx, 0, fx + 13, 40], radius=6, fill=skin, outline=dark)
    d.ellipse([56, 34, 76, 70], fill=skin, outline=dark)  # thumb
    rgba = np.asarray(img).astype(np.float32)
    x = np.linspace(-1, 1, w, dtype=np.float32)[None, :, None]
    rgba[..., :3] *= 0.75 + 0.3 * np.sqrt(np.clip(1 - x**2, 0, 1))  # round limb shading
    return np.clip(rgba, 0, 255).astype(np.uint8), (w // 2, 14)


def render_clutter(rng: np.random.Generator) -> list[np.ndarray]:
    """A bank of non-product things found in carts: receipt, phone, reusable bag, leaflet, keys."""
    out: list[np.ndarray] = []
    # receipt
    im = Image.new("RGBA", (44, 84), (246, 244, 236, 255))
    d = ImageDraw.Draw(im)
    for k in range(8, 80, 7):
        d.line([(5, k), (5 + int(rng.integers(15, 36)), k)], fill=(90, 90, 90, 255), width=2)
    out.append(np.asarray(im.rotate(float(rng.uniform(-30, 30)), expand=True)))
    # phone
    im = Image.new("RGBA", (40, 74), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    d.rounded_rectangle([0, 0, 39, 73], radius=7, fill=(25, 25, 30, 255))
    d.rectangle([4, 8, 35, 64], fill=(40, 60, 95, 255))
    out.append(np.asarray(im.rotate(float(rng.uniform(-60, 60)), expand=True)))
    # reusable bag, crumpled polygon
    for colour in ((30, 110, 60), (160, 40, 50)):
        im = Image.new("RGBA", (130, 100), (0, 0, 0, 0))
        ang = np.sort(rng.uniform(0, 2 * np.pi, 11))
        rad = rng.uniform(30, 48, 11)
        pts = [(65 + r * np.cos(a) * 1.3, 50 + r * np.sin(a)) for a, r in zip(ang, rad, strict=True)]
        ImageDraw.Draw(im).polygon(pts, fill=colour + (255,))
        out.append(np.asarray(im))
    # leaflet
    im = Image.new("RGBA", (64, 86), (250, 220, 40, 255))
    d = ImageDraw.Draw(im)
    d.rectangle([0, 30, 63, 50], fill=(220, 30, 30, 255))
    d.text((32, 40), "SALE", font=font(14), fill=(255, 255, 255), anchor="mm")
    out.append(np.asarray(im.rotate(float(rng.uniform(-40, 40)), expand=True)))
    # keys
    im = Image.new("RGBA", (44, 44), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    d.ellipse([2, 2, 20, 20], outline=(170, 170, 175, 255), width=3)
    d.rectangle([16, 16, 40, 24], fill=(190, 160, 70, 255))
    out.append(np.asarray(im))
    return out


def render_strap(width: int, height: int, vertical: bool) -> np.ndarray:
    """A bag strap or the child-seat flap hanging over the basket: a foreground occluder."""
    if vertical:
        rgba = np.zeros((height, 22, 4), np.uint8)
        rgba[..., :3] = (35, 30, 28)
        rgba[:, 3:19, 3] = 255
        rgba[:, 3:19, :3] = (70, 58, 50)
    else:
        rgba = np.zeros((26, width, 4), np.uint8)
        rgba[..., :3] = (60, 64, 70)
        rgba[:20, :, 3] = 255
    return rgba


def damage(rgba: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Crushed and scuffed packaging: creases, a torn corner, a scuff blotch, faded print."""
    if strength <= 0:
        return rgba
    out = rgba.astype(np.float32)
    h, w = rgba.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(1 + int(3 * strength)):  # creases: dark line with a light ridge beside it
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        ang = rng.uniform(0, np.pi)
        dist = (xx - x0) * np.sin(ang) - (yy - y0) * np.cos(ang)
        out[..., :3] *= np.where(np.abs(dist) < 1.2, 0.55, 1.0)[..., None]
        out[..., :3] += np.where((dist > 1.2) & (dist < 2.6), 45.0, 0.0)[..., None]
    if rng.uniform() < strength:  # scuff
        cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
        r = rng.uniform(0.12, 0.3) * min(w, h)
        m = np.clip(1.0 - ((xx - cx) ** 2 + (yy - cy) ** 2) / r**2, 0, 1)[..., None] * 0.7
        out[..., :3] = out[..., :3] * (1 - m) + 215.0 * m
    if rng.uniform() < strength:  # torn corner
        c = int(rng.integers(4))
        s = rng.uniform(0.15, 0.3) * min(w, h)
        X = xx if c % 2 == 0 else (w - 1 - xx)
        Y = yy if c < 2 else (h - 1 - yy)
        out[..., 3] = np.where(X + Y < s, 0, out[..., 3])
    grey = out[..., :3].mean(axis=2, keepdims=True)
    out[..., :3] = out[..., :3] * (1 - 0.35 * strength) + grey * 0.35 * strength
    return np.clip(out, 0, 255).astype(np.uint8)
