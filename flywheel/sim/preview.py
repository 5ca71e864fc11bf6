"""A contact sheet for people: one labelled row per distribution (manual, store A, store B, ...),
frames sampled across insertions with the ground-truth boxes drawn on them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from flywheel.sim.packaging import font
from flywheel.sim.session import SimFrame
from flywheel.sim.stores import MANUAL
from flywheel.sim.world import StoreWorld, default_world

LABEL_W = 150  # px of the row label column
GAP = 4
CAPTION_H = 14


def contact_sheet_size(cols: int, rows: int, width: int = 320, height: int = 240) -> tuple[int, int]:
    return (
        LABEL_W + cols * (width + GAP) + GAP,
        rows * (height + CAPTION_H + GAP) + GAP,
    )


def _pick(frames: list[SimFrame], cols: int) -> list[SimFrame]:
    """Mostly item frames (approach, hold with both faces), one idle frame for contrast."""
    items = [f for f in frames if f.truth.sku is not None]
    idle = [f for f in frames if f.truth.phase == "idle"]
    n_items = cols - 1 if idle else cols
    idx = np.linspace(0, max(0, len(items) - 1), n_items).round().astype(int) if items else []
    picked = [items[int(i)] for i in idx]
    return picked + idle[len(idle) // 2 : len(idle) // 2 + 1]


def write_contact_sheet(
    path: str | os.PathLike,
    seed: int = 0,
    cols: int = 6,
    world: StoreWorld | None = None,
    boxes: bool = True,
) -> dict:
    """Write a PNG sheet: row 0 manual collection, then one row per store. Returns path, size."""
    world = world or default_world()
    rows = [MANUAL, *world.store_names]
    W, H = world.width, world.height
    size = contact_sheet_size(cols, len(rows), W, H)
    sheet = Image.new("RGB", size, (24, 24, 28))
    draw = ImageDraw.Draw(sheet)
    catalog = world.catalog
    for r, store in enumerate(rows):
        frames: list[SimFrame] = []
        k = 0
        while len([f for f in frames if f.truth.sku]) < cols and k < 6:
            frames += world.session(store, seed * 1000 + k).frames()
            k += 1
        y0 = GAP + r * (H + CAPTION_H + GAP)
        prof = world.profiles[store]
        title = "manual" if store == MANUAL else f"store {store}"
        draw.text((8, y0 + 6), title, font=font(16), fill=(240, 240, 240))
        desc = prof.description
        for i, line in enumerate(_wrap(desc, 22)):
            draw.text((8, y0 + 30 + 12 * i), line, font=font(10), fill=(170, 170, 175))
        for c, fr in enumerate(_pick(frames, cols)):
            x0 = LABEL_W + GAP + c * (W + GAP)
            tile = Image.fromarray(fr.device.image)
            if boxes:
                td = ImageDraw.Draw(tile)
                if fr.truth.item_box:
                    td.rectangle(fr.truth.item_box, outline=(60, 255, 90), width=1)
                if fr.truth.hand_box:
                    td.rectangle(fr.truth.hand_box, outline=(255, 160, 40), width=1)
            sheet.paste(tile, (x0, y0))
            t = fr.truth
            cap = f"{fr.truth.phase}"
            if t.sku:
                p = catalog.by_ean(t.sku)
                cap += f" | {p.brand} {p.name}"
                cap += " | barcode" if t.barcode_in_view else ""
            cap += f" | {fr.device.weight_g:.0f} g"
            draw.text((x0 + 2, y0 + H + 1), cap, font=font(10), fill=(220, 220, 220))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, format="PNG")
    return {"path": str(out), "width": size[0], "height": size[1], "rows": rows}


def _wrap(text: str, width: int) -> list[str]:
    lines, cur = [], ""
    for word in text.split():
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}".strip()
    return lines + ([cur] if cur else [])
