"""Replay: what a device experienced, as a video with a timeline and a PNG contact sheet.

The timeline under the picture shows the weight (grams), the model's confidence (with the top-1
prediction written out), the cart's location and every trigger firing, with a cursor at the current
frame. Everything is drawn with Pillow from the clip and its sidecar in the landing zone.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.contract.schemas import ClipSidecar, parse_sidecar
from edge_agent.lake import Lake, ObjectNotFound
from flywheel.depot.config import replay_prefix
from flywheel.depot.frames import decode_clip

TIMELINE_H = 110
COLOURS = {"weight": (80, 160, 255), "conf": (255, 190, 40), "trigger": (255, 60, 60),
           "cursor": (255, 255, 255), "grid": (60, 60, 70), "text": (230, 230, 230)}


class ClipNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Replay:
    clip_id: str
    video_key: str
    sheet_key: str
    video_path: Path | None  # set when the lake is local (or an out_dir was given)
    sheet_path: Path | None
    frames: int


def find_clip_key(lake: Lake, clip_id: str, day: str | None = None) -> str:
    """The landing key of a clip: from the search index (clip_id is indexed), else from the Depot's
    frames tables (newest day first)."""
    from flywheel.depot.index import _sql_str, depot_days, open_table
    from flywheel.depot.ingest import read_frames

    if day is None:
        try:
            tbl, _ = open_table(lake)
            rows = (tbl.search().where(f"clip_id = {_sql_str(clip_id)}").select(["clip_key"])
                    .limit(1).to_list())
            if rows:
                return rows[0]["clip_key"]
        except (LookupError, ValueError, OSError):
            pass  # no index yet: scan the frames tables

    days = [day] if day else depot_days(lake)
    for d in days:
        t = read_frames(lake, d, columns=["clip_id", "clip_key"])
        if t is None:
            continue
        ids = t.column("clip_id").to_pylist()
        if clip_id in ids:
            return t.column("clip_key")[ids.index(clip_id)].as_py()
    raise ClipNotFound(f"clip {clip_id} is not in the depot (ingested days: {len(days)})")


def load_clip(lake: Lake, clip_id: str, day: str | None = None) -> tuple[ClipSidecar, bytes]:
    key = find_clip_key(lake, clip_id, day)
    try:
        return parse_sidecar(lake.get(key[: -len(".mp4")] + ".json")), lake.get(key)
    except ObjectNotFound as e:
        raise ClipNotFound(str(e)) from e


def _font(size: int):  # noqa: ANN202
    from PIL import ImageFont

    for p in (Path(__file__).resolve().parents[1] / "sim" / "fonts" / "DejaVuSans.ttf",):
        if p.exists():
            return ImageFont.truetype(str(p), size)
    return ImageFont.load_default()


def draw_timeline(sc: ClipSidecar, width: int):  # noqa: ANN201 - PIL.Image
    """The static timeline panel (curves, trigger marks); the cursor is drawn per frame."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, TIMELINE_H), (25, 25, 32))
    d = ImageDraw.Draw(img)
    dur = max(sc.clip.duration_s, 1e-6)
    x = lambda t: int(4 + (width - 8) * min(t / dur, 1.0))  # noqa: E731
    lanes = {"weight": (8, 48), "conf": (56, 90)}
    for top, bottom in lanes.values():
        d.rectangle([4, top, width - 4, bottom], outline=COLOURS["grid"])
    if sc.weight_series:
        g = [s.grams for s in sc.weight_series]
        lo, hi = min(g), max(g) if max(g) > min(g) else min(g) + 1
        pts = [(x(s.t), int(48 - 38 * (s.grams - lo) / (hi - lo))) for s in sc.weight_series]
        d.line(pts if len(pts) > 1 else pts * 2, fill=COLOURS["weight"], width=2)
        d.text((8, 8), f"weight {g[0]:.0f}->{g[-1]:.0f} g", fill=COLOURS["weight"], font=_font(10))
    pts = [(x(f.t), int(90 - 34 * f.confidence)) for f in sc.frames]
    d.line(pts if len(pts) > 1 else pts * 2, fill=COLOURS["conf"], width=2)
    d.text((8, 57), "confidence", fill=COLOURS["conf"], font=_font(10))
    labelled: set[str] = set()
    for t in sc.triggers:  # every firing is a line; each rule is named once, at its first firing
        tx = x(sc.frames[t.frame].t)
        d.line([(tx, 4), (tx, 94)], fill=COLOURS["trigger"], width=1)
        if t.rule not in labelled:
            d.text((min(tx + 3, width - 90), 94 + 8 * (len(labelled) % 2)), t.rule[:28],
                   fill=COLOURS["trigger"], font=_font(8))
            labelled.add(t.rule)
    for b in sc.barcode_reads:
        bx = x(sc.frames[b.frame].t)
        d.text((min(bx + 3, width - 90), 24), f"|| {b.text}", fill=COLOURS["text"], font=_font(9))
    return img


def _loc_at(sc: ClipSidecar, t: float) -> str:
    loc = None
    for s in sc.location_series:
        if s.t <= t:
            loc = s
    return f"{loc.aisle} {loc.x_m:.1f} m" if loc else "-"


def compose_frame(rgb: np.ndarray, sc: ClipSidecar, i: int, timeline, width: int):  # noqa: ANN001,ANN201
    from PIL import Image, ImageDraw

    h = int(rgb.shape[0] * width / rgb.shape[1])
    canvas = Image.new("RGB", (width, h + TIMELINE_H), (0, 0, 0))
    canvas.paste(Image.fromarray(rgb).resize((width, h)), (0, 0))
    canvas.paste(timeline, (0, h))
    d = ImageDraw.Draw(canvas)
    fp = sc.frames[i]
    cx = int(4 + (width - 8) * min(fp.t / max(sc.clip.duration_s, 1e-6), 1.0))
    d.line([(cx, h), (cx, h + TIMELINE_H)], fill=COLOURS["cursor"], width=1)
    fired = [t.rule for t in sc.triggers if t.frame == i]
    label = (f"#{i} t={fp.t:.2f}s  pred={fp.prediction or '-'} conf={fp.confidence:.2f}  "
             f"{_loc_at(sc, fp.t)}")
    d.rectangle([0, 0, width, 14], fill=(0, 0, 0))
    d.text((3, 1), label, fill=COLOURS["text"], font=_font(10))
    if fired:
        d.rectangle([0, 0, width - 1, h - 1], outline=COLOURS["trigger"], width=3)
        d.text((3, 16), "TRIGGER " + ", ".join(fired), fill=COLOURS["trigger"], font=_font(11))
    return canvas


def contact_sheet(sc: ClipSidecar, pixels: dict[int, np.ndarray], *, tiles: int = 12, tile_w: int = 200):
    """A grid of evenly spread frames (trigger frames always included) above the full timeline."""
    from PIL import Image

    n = sc.clip.frame_count
    first_firing: dict[str, int] = {}
    for t in sorted(sc.triggers, key=lambda t: t.frame):
        first_firing.setdefault(t.rule, t.frame)
    # evenly spread frames plus each rule's first firing (a device may fire on every frame)
    spread = max(2, tiles - len(first_firing))
    picks = sorted(set(np.linspace(0, n - 1, min(spread, n)).astype(int).tolist())
                   | set(first_firing.values()))
    timeline = draw_timeline(sc, tile_w)
    cells = [compose_frame(pixels[i], sc, i, timeline, tile_w) for i in picks]
    cols = min(4, len(cells))
    rows = (len(cells) + cols - 1) // cols
    cw, ch = cells[0].size
    sheet = Image.new("RGB", (cols * cw, rows * ch + TIMELINE_H), (10, 10, 14))
    for k, c in enumerate(cells):
        sheet.paste(c, ((k % cols) * cw, (k // cols) * ch))
    sheet.paste(draw_timeline(sc, cols * cw), (0, rows * ch))
    return sheet


def render_replay(lake: Lake, clip_id: str, *, day: str | None = None, out_dir: Path | None = None,
                  width: int = 480) -> Replay:
    """Render `replay.mp4` and `contact_sheet.png`, store both under depot/replays/<clip_id>/."""
    import av

    sc, data = load_clip(lake, clip_id, day)
    pixels, n = decode_clip(data)
    timeline = draw_timeline(sc, width)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=max(1, round(sc.clip.fps)))
        first = compose_frame(pixels[0], sc, 0, timeline, width)
        stream.width, stream.height = first.size[0] // 2 * 2, first.size[1] // 2 * 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(n):
            img = compose_frame(pixels[i], sc, min(i, len(sc.frames) - 1), timeline, width)
            arr = np.ascontiguousarray(np.asarray(img)[: stream.height, : stream.width])
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    sheet_buf = io.BytesIO()
    contact_sheet(sc, pixels).save(sheet_buf, format="PNG")
    prefix = replay_prefix(clip_id)
    video_key, sheet_key = f"{prefix}/replay.mp4", f"{prefix}/contact_sheet.png"
    lake.put(video_key, buf.getvalue())
    lake.put(sheet_key, sheet_buf.getvalue())
    video_path = sheet_path = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        video_path, sheet_path = out_dir / f"{clip_id}.mp4", out_dir / f"{clip_id}.png"
        video_path.write_bytes(buf.getvalue())
        sheet_path.write_bytes(sheet_buf.getvalue())
    elif lake.is_local:
        video_path, sheet_path = lake.local_path(video_key), lake.local_path(sheet_key)
    return Replay(clip_id, video_key, sheet_key, video_path, sheet_path, n)


def replay_markdown(lake: Lake, clip_id: str, day: str | None = None, max_width: int = 800) -> str:
    """The contact sheet as inline base64 PNG markdown (what the Dagster UI shows)."""
    from PIL import Image

    sc, data = load_clip(lake, clip_id, day)
    pixels, _ = decode_clip(data)
    sheet = contact_sheet(sc, pixels, tiles=8, tile_w=160)
    if sheet.width > max_width:
        size = (max_width, int(sheet.height * max_width / sheet.width))
        sheet = sheet.resize(size, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=True)
    b64 = base64.b64encode(buf.getvalue()).decode()
    return (f"**{sc.device_id}** @ {sc.store_id}, {sc.started_at:%Y-%m-%d %H:%M:%S}, model "
            f"{sc.model_version}, triggers: {', '.join(t.rule for t in sc.triggers)}\n\n"
            f"![replay {clip_id}](data:image/png;base64,{b64})")
