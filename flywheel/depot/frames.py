"""Pixels: decode a clip with PyAV, choose the frames worth keeping, measure them, encode images.

The ingest's per-frame work beyond decoding is kept to a few tens of microseconds of C, all of it
outside the GIL (PyAV, OpenCV), so worker threads overlap it with decoding and embedding:
blur and brightness come from the decoder's own luma plane (no RGB pass), and the frame JPEG and
its thumbnail are encoded once each by libjpeg-turbo (OpenCV) from the RGB the encoder needs anyway.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


class DecodeError(Exception):
    """The clip bytes are not a decodable H.264 MP4 (truncated, corrupt, wrong codec)."""


class VideoMismatch(DecodeError):
    """The video decodes but is not what its sidecar describes (codec, size, frame count)."""


@dataclass(frozen=True)
class VideoSpec:
    """What the sidecar promises about the video stream; every decoded frame is held to it."""

    codec: str
    width: int
    height: int
    frame_count: int | None = None  # decoding stops at the first frame past it (no frame bombs)


def _decode(data: bytes, wanted: set[int] | None, on_frame: Callable[[int, Any], None],
            threads: int = 0, expect: VideoSpec | None = None) -> int:
    """Decode every frame (H.264 needs it); call `on_frame(index, av_frame)` for the wanted ones.
    `threads`: the codec's slice threads (0 = as many as cores). With `expect`, the stream's codec
    and every frame's size must match it (a resolution change mid-stream is caught)."""
    import av

    n = 0
    try:
        with av.open(io.BytesIO(data), mode="r", format="mp4") as container:
            if not container.streams.video:
                kinds = sorted({s.type for s in container.streams}) or ["no streams"]
                raise DecodeError(f"no video stream in the MP4 (has: {', '.join(kinds)})")
            stream = container.streams.video[0]
            if expect is not None and stream.codec_context.name != expect.codec:
                raise VideoMismatch(f"codec is {stream.codec_context.name}, sidecar says {expect.codec}")
            # Slice threads (PyAV's default), not frame threads: for short clips decoded several at
            # a time, frame threading costs more in thread start-up and frame delay than it gains.
            stream.thread_type = "SLICE"
            stream.codec_context.thread_count = threads
            for frame in container.decode(stream):
                if expect is not None and expect.frame_count is not None and n >= expect.frame_count:
                    raise VideoMismatch(f"the video has more than the {expect.frame_count} frames its "
                                        "sidecar says")
                if expect is not None and (frame.width, frame.height) != (expect.width, expect.height):
                    raise VideoMismatch(f"frame {n} is {frame.width}x{frame.height}, sidecar says "
                                        f"{expect.width}x{expect.height}")
                if wanted is None or n in wanted:
                    on_frame(n, frame)
                n += 1
    except (av.error.FFmpegError, IndexError, ValueError) as e:
        raise DecodeError(f"the MP4 does not decode after frame {n} ({type(e).__name__}: {e})") from e
    if n == 0:
        raise DecodeError("no video frames decoded")
    return n


def decode_clip(data: bytes, wanted: set[int] | None = None) -> tuple[dict[int, np.ndarray], int]:
    """Decode every frame; convert to RGB only the `wanted` indices (all if None).

    Returns ({index: HxWx3 uint8}, frames decoded)."""
    out: dict[int, np.ndarray] = {}
    n = _decode(data, wanted, lambda i, f: out.__setitem__(i, f.to_ndarray(format="rgb24")))
    return out, n


def sample_indices(frame_count: int, every: int, extra: set[int]) -> list[int]:
    """Every Nth frame plus the `extra` ones (trigger and barcode frames), in order."""
    base = set(range(0, frame_count, max(every, 1)))
    return sorted(base | {i for i in extra if 0 <= i < frame_count})


@dataclass(frozen=True)
class SampledFrame:
    index: int
    rgb: np.ndarray  # HxWx3 uint8
    blur: float  # see frame_measures
    brightness: float


def decode_sampled(data: bytes, wanted: set[int], threads: int = 0, expect: VideoSpec | None = None
                   ) -> tuple[list[SampledFrame], int]:
    """Like decode_clip, plus blur and brightness from each wanted frame's luma plane. `threads`: see
    `_decode` (1 where clips are decoded in parallel already)."""
    out: list[SampledFrame] = []

    def keep(i: int, frame: Any) -> None:
        blur, bright = frame_measures(frame)
        out.append(SampledFrame(i, frame.to_ndarray(format="rgb24"), blur, bright))

    n = _decode(data, wanted, keep, threads, expect)
    return out, n


# Video luma is usually limited range (16..235): scale to full range so brightness reads 0..255 like
# the luma of the RGB picture, and blur is in the same units whatever the stream's range.
_LIMITED_SCALE = 255.0 / 219.0


def luma_plane(frame: Any) -> tuple[np.ndarray, bool]:
    """(HxW uint8 luma view of a decoded frame, full_range) without a colour conversion where the
    pixel format is planar YUV (what H.264 decodes to); other formats are converted to gray."""
    fmt = frame.format.name
    if fmt.startswith(("yuv", "yuvj", "nv12", "nv21")) and not fmt.startswith("yuva"):
        plane = frame.planes[0]
        h, w = frame.height, frame.width
        y = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:h, :w]
        full = fmt.startswith("yuvj") or int(frame.color_range or 0) == 2  # 2 = AVCOL_RANGE_JPEG
        return y, full
    return frame.to_ndarray(format="gray"), True


def frame_measures(frame: Any) -> tuple[float, float]:
    """(blur, brightness) of a decoded frame, from its luma plane (see `measures`)."""
    y, full = luma_plane(frame)
    return measures_luma(y, full)


def measures_luma(y: np.ndarray, full_range: bool = True) -> tuple[float, float]:
    """(blur, brightness) from a uint8 luma image.

    blur: variance of the 4-neighbour Laplacian of luma at half resolution (2x2 box average), low =
    blurry: the classic focus measure, taken where sensor noise weighs less than focus;
    brightness: mean luma, 0..255."""
    import cv2

    h, w = y.shape
    half = cv2.resize(y, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA) \
        if h >= 4 and w >= 4 else y
    lap = cv2.Laplacian(half, cv2.CV_32F, ksize=1)
    inner = lap[1:-1, 1:-1] if lap.shape[0] > 2 and lap.shape[1] > 2 else lap
    _, std = cv2.meanStdDev(inner)
    blur = float(std[0, 0]) ** 2
    bright = float(cv2.mean(y)[0])
    if not full_range:
        blur *= _LIMITED_SCALE ** 2
        bright = (bright - 16.0) * _LIMITED_SCALE
    return blur, min(max(bright, 0.0), 255.0)


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB image, uint8."""
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(rgb, np.uint8), cv2.COLOR_RGB2GRAY)


def measures(rgb: np.ndarray) -> tuple[float, float]:
    """(blur, brightness) of an RGB image (the same measures as for decoded frames)."""
    return measures_luma(luma(rgb))


def to_jpeg(rgb: np.ndarray, quality: int = 90, max_side: int | None = None) -> bytes:
    """JPEG (libjpeg-turbo through OpenCV, 4:2:0) of an RGB image, shrunk (area filter) so its longest
    side is at most `max_side` when given."""
    import cv2

    h, w = rgb.shape[:2]
    if max_side is not None and max(h, w) > max_side:
        scale = max_side / max(h, w)
        rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                         interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def from_image_bytes(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
