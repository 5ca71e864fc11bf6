"""H.264 encoding with PyAV: probe hardware encoders, fall back to libx264 ultrafast.

FFmpeg lists hardware encoders whether or not the hardware is there, so "listed" proves
nothing: the probe opens each candidate and encodes one small frame; the first that works wins.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

HARDWARE_ENCODERS = ("h264_nvenc", "h264_v4l2m2m", "h264_qsv", "h264_vaapi")
SOFTWARE_ENCODER = "libx264"
# Same settings the benchmark hands to the ffmpeg CLI: ultrafast preset, 4:2:0, one thread each
# (the device's cores belong to the inference loop first).
X264_OPTIONS = {"preset": "ultrafast", "tune": "zerolatency"}

_probed: dict[tuple[str, ...], str] = {}


@dataclass(frozen=True)
class EncodedClip:
    codec: str
    width: int
    height: int
    fps: float
    frame_count: int
    duration_s: float


def _try_encoder(name: str) -> bool:
    import av

    try:
        ctx = av.CodecContext.create(name, "w")
        ctx.width, ctx.height = 256, 144
        ctx.pix_fmt = "nv12" if name in ("h264_vaapi", "h264_qsv") else "yuv420p"
        ctx.time_base = Fraction(1, 15)
        ctx.framerate = Fraction(15, 1)
        ctx.open()
        frame = av.VideoFrame.from_ndarray(np.zeros((144, 256, 3), np.uint8), format="rgb24")
        frame = frame.reformat(format=ctx.pix_fmt)
        frame.pts = 0
        ctx.encode(frame)
        ctx.encode(None)
        return True
    except Exception as e:  # absent hardware shows up as any of several av errors
        log.debug("encoder %s unusable: %s", name, e)
        return False


def probe_encoder(candidates: Sequence[str] = HARDWARE_ENCODERS) -> str:
    """The first candidate that really encodes, else libx264; cached per candidate list."""
    key = tuple(candidates)
    if key not in _probed:
        chosen = SOFTWARE_ENCODER
        for name in candidates:
            if _try_encoder(name):
                chosen = name
                break
        log.info("H.264 encoder: %s (probed %s)", chosen, ", ".join(candidates) or "none")
        _probed[key] = chosen
    return _probed[key]


def estimate_fps(times: Sequence[float], default: float = 15.0) -> float:
    if len(times) < 2 or times[-1] <= times[0]:
        return default
    return min(240.0, max(1.0, (len(times) - 1) / (times[-1] - times[0])))


def encode_clip(images: Sequence[np.ndarray], times: Sequence[float], path: str | Path, *,
                codec: str = SOFTWARE_ENCODER, threads: int = 1,
                on_frame: Callable[[int], None] | None = None) -> EncodedClip:
    """Encode RGB frames to an H.264 MP4 at `path`, fsynced before returning.

    Frames keep their own timestamps (millisecond pts), so a clip with dropped source frames plays
    back at the right speed; `fps` in the result is the average rate.
    """
    import av

    if not images:
        raise ValueError("no frames to encode")
    h, w = images[0].shape[:2]
    fps = estimate_fps(times)
    path = Path(path)
    with open(path, "wb") as f:
        with av.open(f, "w", format="mp4") as out:
            stream = out.add_stream(codec, rate=max(1, round(fps)))
            stream.width, stream.height = w, h
            stream.pix_fmt = "nv12" if codec in ("h264_vaapi", "h264_qsv") else "yuv420p"
            stream.time_base = Fraction(1, 1000)
            stream.codec_context.time_base = Fraction(1, 1000)
            if codec == SOFTWARE_ENCODER:
                stream.options = dict(X264_OPTIONS)
                stream.codec_context.thread_count = threads
            t0 = times[0]
            last_pts = -1
            for i, img in enumerate(images):
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                pts = max(last_pts + 1, int(round((times[i] - t0) * 1000)))
                frame.pts, last_pts = pts, pts
                for packet in stream.encode(frame):
                    out.mux(packet)
                if on_frame:
                    on_frame(i)
            for packet in stream.encode(None):
                out.mux(packet)
        f.flush()
        os.fsync(f.fileno())
    duration = max(times[-1] - times[0], 0.0) + 1.0 / fps
    return EncodedClip("h264", w, h, round(fps, 3), len(images), round(duration, 4))
