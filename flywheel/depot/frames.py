"""Pixels: decode a clip with PyAV, choose the frames worth keeping, measure them, encode images."""

from __future__ import annotations

import io

import numpy as np


class DecodeError(Exception):
    """The clip bytes are not a decodable H.264 MP4 (truncated, corrupt, wrong codec)."""


def decode_clip(data: bytes, wanted: set[int] | None = None) -> tuple[dict[int, np.ndarray], int]:
    """Decode every frame (H.264 needs it); convert to RGB only the `wanted` indices (all if None).

    Returns ({index: HxWx3 uint8}, frames decoded)."""
    import av

    out: dict[int, np.ndarray] = {}
    n = 0
    try:
        with av.open(io.BytesIO(data), mode="r", format="mp4") as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if wanted is None or n in wanted:
                    out[n] = frame.to_ndarray(format="rgb24")
                n += 1
    except (av.error.FFmpegError, IndexError, ValueError) as e:
        raise DecodeError(f"{type(e).__name__}: {e}") from e
    if n == 0:
        raise DecodeError("no video frames decoded")
    return out, n


def sample_indices(frame_count: int, every: int, extra: set[int]) -> list[int]:
    """Every Nth frame plus the `extra` ones (trigger and barcode frames), in order."""
    base = set(range(0, frame_count, max(every, 1)))
    return sorted(base | {i for i in extra if 0 <= i < frame_count})


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def measures(rgb: np.ndarray) -> tuple[float, float]:
    """(blur, brightness) from one luma pass.

    blur: variance of the 4-neighbour Laplacian of luma, low = blurry (the classic focus measure);
    brightness: mean luma, 0..255."""
    y = luma(rgb.astype(np.float32))
    lap = (y[1:-1, :-2] + y[1:-1, 2:] + y[:-2, 1:-1] + y[2:, 1:-1] - 4 * y[1:-1, 1:-1])
    return float(lap.var()), float(y.mean())


def blur_score(rgb: np.ndarray) -> float:
    return measures(rgb)[0]


def brightness(rgb: np.ndarray) -> float:
    return measures(rgb)[1]


def to_jpeg(rgb: np.ndarray, quality: int = 90, max_side: int | None = None) -> bytes:
    from PIL import Image

    img = Image.fromarray(rgb)
    if max_side is not None and max(img.size) > max_side:
        factor = max(img.size) // max_side
        if factor > 1:  # integer box reduction first: far cheaper than a filtered resize
            img = img.reduce(factor)
        if max(img.size) > max_side:
            scale = max_side / max(img.size)
            img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                             Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def from_image_bytes(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
