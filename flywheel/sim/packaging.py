"""Packaging sprites: front (brand, product name, weight) and back (real EAN-13 barcode) per SKU.

Rendered once with Pillow and cached by the world; per-frame code only composites the RGBA arrays.
At scale 1.0 the barcode is drawn at one pixel per module (95 modules + quiet zones = 113 px), the
size a 320x240 cart camera sees when a shopper holds an item up: readable when sharp and well lit,
lost under blur, glare and noise, which is exactly the trigger behaviour the edge agent relies on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import zxingcpp
from PIL import Image, ImageDraw, ImageFont

from flywheel.sim.catalog import Product

# (width, height) of the package at scale 1.0, in pixels of a 320x240 frame, item held near the lens
SIZES: dict[str, tuple[int, int]] = {
    "box": (134, 106),
    "can": (84, 150),
    "bottle": (78, 210),
    "bag": (140, 126),
}
BAR_HEIGHT = 34  # pixels of bar height on the back label


@dataclass(frozen=True)
class Sprite:
    rgba: np.ndarray  # HxWx4 uint8, alpha 0 outside the package silhouette
    barcode_rect: tuple[int, int, int, int] | None  # x1, y1, x2, y2 of the barcode (back face only)

    @property
    def size(self) -> tuple[int, int]:
        return self.rgba.shape[1], self.rgba.shape[0]


def font_path() -> Path:
    return Path(str(resources.files("flywheel.sim") / "fonts" / "DejaVuSans.ttf"))


@lru_cache(maxsize=64)
def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path()), size)


def barcode_bitmap(ean: str, bar_height: int = BAR_HEIGHT) -> np.ndarray:
    """EAN-13 bars as uint8 (0 bar, 255 space), quiet zones included, one pixel per module."""
    bc = zxingcpp.create_barcode(ean, zxingcpp.BarcodeFormat.EAN13)
    img = np.asarray(zxingcpp.write_barcode_to_image(bc, scale=1, add_quiet_zones=True))
    row = img[img.shape[0] // 2]  # 1-D symbol: every row is the same pattern
    return np.repeat(row[None, :], bar_height, axis=0).astype(np.uint8)


def _mask(shape: str, w: int, h: int) -> Image.Image:
    m = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(m)
    if shape == "box":
        d.rounded_rectangle([0, 0, w - 1, h - 1], radius=3, fill=255)
    elif shape == "can":
        d.rounded_rectangle([0, 0, w - 1, h - 1], radius=9, fill=255)
    elif shape == "bottle":
        neck = w // 3
        d.rectangle([w // 2 - neck // 2, 0, w // 2 + neck // 2, 44], fill=255)
        d.ellipse([0, 26, w - 1, 74], fill=255)  # shoulders
        d.rounded_rectangle([0, 50, w - 1, h - 1], radius=12, fill=255)
    elif shape == "bag":
        d.rounded_rectangle([0, 8, w - 1, h - 9], radius=16, fill=255)
        teeth = 14  # crimped seals top and bottom
        for y0, sgn in ((8, -1), (h - 9, 1)):
            pts = [(0, y0)]
            for i in range(teeth + 1):
                pts.append((i * (w - 1) / teeth, y0 + sgn * (8 if i % 2 else 2)))
            pts.append((w - 1, y0))
            d.polygon(pts, fill=255)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return m


def _shading(shape: str, w: int, h: int) -> np.ndarray:
    """Multiplicative light falloff: cylinders get a specular column, bags a pillow bulge."""
    x = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :]
    y = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
    if shape in ("can", "bottle"):
        s = 0.62 + 0.45 * np.sqrt(np.clip(1 - x**2, 0, 1)) + 0.25 * np.exp(-((x + 0.45) ** 2) / 0.01)
        s = np.broadcast_to(s, (h, w))
    elif shape == "bag":
        s = 1.08 - 0.28 * (x**2 + 0.6 * y**2) + 0.12 * np.exp(-((x + 0.3) ** 2 + (y + 0.3) ** 2) / 0.05)
    else:
        s = np.broadcast_to(1.05 - 0.12 * (y + 1) / 2 - 0.05 * np.abs(x), (h, w))
    return np.asarray(s, dtype=np.float32)


def _fit_font(draw: ImageDraw.ImageDraw, text: str, max_w: int, start: int, stroke: int = 0):
    size = start
    while size > 7:
        f = font(size)
        if draw.textlength(text, font=f) + 2 * stroke <= max_w:
            return f
        size -= 1
    return font(7)


def _finish(canvas: Image.Image, shape: str, rim: tuple[int, int, int]) -> np.ndarray:
    w, h = canvas.size
    rgb = np.asarray(canvas, dtype=np.float32) * _shading(shape, w, h)[..., None]
    if shape == "can":  # metal rims top and bottom
        rgb[:7] = np.array(rim, np.float32) * 0.8
        rgb[-7:] = np.array(rim, np.float32) * 0.7
    alpha = np.asarray(_mask(shape, w, h), dtype=np.uint8)
    out = np.empty((h, w, 4), np.uint8)
    out[..., :3] = np.clip(rgb, 0, 255).astype(np.uint8)
    out[..., 3] = alpha
    return out


def _body_top(shape: str) -> int:
    return {"bottle": 60, "bag": 16, "can": 10}.get(shape, 4)


def render_front(p: Product) -> Sprite:
    w, h = SIZES[p.shape]
    primary, secondary, text = p.palette
    img = Image.new("RGB", (w, h), primary)
    d = ImageDraw.Draw(img)
    top = _body_top(p.shape)
    bottom = h - (16 if p.shape == "bag" else 8)
    if p.shape == "bottle":
        d.rectangle([w // 2 - 14, 0, w // 2 + 14, 12], fill=secondary)  # cap
    # a secondary band carrying the brand, like most real packs
    band_h = max(18, (bottom - top) // 4)
    d.rectangle([0, top + 4, w, top + 4 + band_h], fill=secondary)
    d.ellipse([w - 34, bottom - 34, w - 6, bottom - 6], fill=secondary)  # logo seal
    brand_font = _fit_font(d, p.brand.upper(), w - 8, 17, stroke=1)
    d.text((w // 2, top + 4 + band_h // 2), p.brand.upper(), font=brand_font, fill=(20, 20, 25),
           anchor="mm", stroke_width=1, stroke_fill=(250, 250, 250))
    words = p.name.split()
    lines = [" ".join(words[: (len(words) + 1) // 2]), " ".join(words[(len(words) + 1) // 2 :])]
    lines = [s for s in lines if s]
    y = top + band_h + 14
    for line in lines:
        f = _fit_font(d, line, w - 10, 14)
        d.text((w // 2, y), line, font=f, fill=text, anchor="mt")
        y += f.size + 3
    d.text((6, bottom - 4), f"{int(p.weight_g)} g", font=font(9), fill=text, anchor="lb")
    return Sprite(_finish(img, p.shape, secondary), None)


def render_back(p: Product) -> Sprite:
    """Back face: ingredients text and a white label with the real, decodable EAN-13."""
    w, h = SIZES[p.shape]
    primary, secondary, text = p.palette
    light = tuple(int(c * 0.55 + 255 * 0.45) for c in primary)
    img = Image.new("RGB", (w, h), light)
    d = ImageDraw.Draw(img)
    top = _body_top(p.shape)
    if p.shape == "bottle":
        d.rectangle([w // 2 - 14, 0, w // 2 + 14, 12], fill=secondary)
    d.text((5, top + 3), p.brand, font=font(9), fill=(30, 30, 30))
    d.text((5, top + 14), "INGREDIENTS: see pack", font=font(7), fill=(60, 60, 60))
    bars = barcode_bitmap(p.ean)
    bh, bw = bars.shape
    digits_h = 10
    vertical = p.shape in ("can", "bottle")  # narrow cylinders carry the code along their height
    label = np.full((bh + digits_h + 4, bw + 4), 255, np.uint8)
    label[2 : 2 + bh, 2 : 2 + bw] = bars
    lab = Image.fromarray(label, "L")
    ImageDraw.Draw(lab).text((label.shape[1] // 2, bh + 2), p.ean, font=font(8), fill=0, anchor="mt")
    if vertical:
        lab = lab.rotate(90, expand=True)
    lw, lh = lab.size
    # high on the pack: the shopper's fingers hold the bottom edge
    x1, y1 = (w - lw) // 2, min(h - lh - 4, top + (4 if vertical else 22))
    img.paste(Image.merge("RGB", (lab, lab, lab)), (x1, y1))
    rgba = _finish(img, p.shape, secondary)
    # the label is a flat sticker: undo the package shading there so bars keep full contrast
    rgba[y1 : y1 + lh, x1 : x1 + lw, :3] = np.asarray(lab)[..., None]
    return Sprite(rgba, (x1, y1, x1 + lw, y1 + lh))


def scale_sprite(s: Sprite, factor: float) -> Sprite:
    if factor == 1.0:
        return s
    h, w = s.rgba.shape[:2]
    nw, nh = max(4, round(w * factor)), max(4, round(h * factor))
    im = Image.fromarray(s.rgba, "RGBA").resize((nw, nh), Image.Resampling.LANCZOS)
    rect = None
    if s.barcode_rect is not None:
        rect = tuple(int(round(v * factor)) for v in s.barcode_rect)
    return Sprite(np.asarray(im).copy(), rect)  # type: ignore[arg-type]
