"""Frame sources behind one small interface: an iterator of `Frame`s plus `close()`.

- `AvSource`: a video file, a camera (`/dev/video0` with format v4l2) or a stream URL (rtsp, http)
  decoded by PyAV.
- `IterSource`: frames pushed by someone else (the fleet runner feeds simulated carts this way).
- `ReconnectingSource`: wraps a source factory; when the source dies it is reopened with backoff,
  and every failure is counted, so a flaky camera never stops the agent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class Frame:
    image: np.ndarray  # H x W x 3 uint8, RGB
    t: float  # seconds since the source started (monotonic within a source)
    weight_g: float | None = None  # cart weight sensor, when the device has one
    location: tuple[str, float] | None = None  # (aisle id, metres along the aisle)
    wall: datetime | None = None  # capture wall-clock time (UTC); the agent's clock when None


class FrameSource(Protocol):
    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


def check_frame(frame: object) -> str | None:
    """Why a frame is unusable (corrupt, wrong type or shape), or None when it is fine."""
    if not isinstance(frame, Frame):
        return f"not a Frame: {type(frame).__name__}"
    img = frame.image
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        return "image is not a uint8 array"
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 16 or img.shape[1] < 16:
        return f"image shape {getattr(img, 'shape', None)} is not H x W x 3 (>= 16 px)"
    if img.shape[0] % 2 or img.shape[1] % 2:
        return f"image size {img.shape[1]}x{img.shape[0]} is odd (H.264 4:2:0 needs even sizes)"
    if not np.isfinite(frame.t):
        return "timestamp is not finite"
    return None


class IterSource:
    def __init__(self, frames: Iterable[Frame]) -> None:
        self._frames = frames

    def __iter__(self) -> Iterator[Frame]:
        yield from self._frames

    def close(self) -> None:
        close = getattr(self._frames, "close", None)
        if callable(close):
            close()


class AvSource:
    """Decode a file, device or stream with PyAV; `fps` paces playback of files (None = as fast)."""

    def __init__(self, url: str, *, format: str | None = None, options: dict[str, str] | None = None,
                 fps: float | None = None, timeout_s: float = 10.0) -> None:
        self.url, self.format, self.options, self.fps = url, format, dict(options or {}), fps
        self.timeout_s = timeout_s
        self.ts_repairs = 0  # frames whose timestamp went backwards (RTP resync, camera clock reset)
        self._container = None

    def __iter__(self) -> Iterator[Frame]:
        import av

        self._container = av.open(self.url, format=self.format, options=self.options,
                                  timeout=self.timeout_s)
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        start = time.monotonic()
        period = 1.0 / float(stream.average_rate or 15)
        t0: float | None = None
        prev = -period
        for n, vf in enumerate(self._container.decode(stream)):
            t = float(vf.time) if vf.time is not None else n * period
            t0 = t if t0 is None else t0
            # RTSP clients re-base timestamps when the first RTCP sender report arrives, and cameras
            # reset their clocks: time must still move forward, or clips and triggers misorder frames
            if t - t0 <= prev:
                self.ts_repairs += 1
                t0 = t - (prev + period)
            prev = t - t0
            if self.fps:
                delay = (n / self.fps) - (time.monotonic() - start)
                if delay > 0:
                    time.sleep(delay)
            yield Frame(vf.to_ndarray(format="rgb24"), prev)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


class ReconnectingSource:
    """Reopen a dying source with exponential backoff; `errors` counts failures by cause."""

    def __init__(self, factory: Callable[[], FrameSource], *, max_reconnects: int | None = None,
                 backoff_s: float = 0.5, max_backoff_s: float = 10.0,
                 on_error: Callable[[str, Exception], None] | None = None,
                 reconnect_on_eof: bool = False,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.factory = factory
        self.reconnect_on_eof = reconnect_on_eof  # live sources: an ended stream is a dead stream
        self.max_reconnects = max_reconnects
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.on_error = on_error
        self.reconnects = 0
        self.errors: dict[str, int] = {}
        self._sleep = sleep
        self._source: FrameSource | None = None
        self._closed = False

    def __iter__(self) -> Iterator[Frame]:
        delay = self.backoff_s
        t_offset = 0.0  # keeps timestamps increasing across reconnects
        while not self._closed:
            last_t = 0.0
            try:
                self._source = self.factory()
                for frame in self._source:
                    delay = self.backoff_s  # healthy again
                    last_t = frame.t
                    frame.t += t_offset
                    yield frame
                if not self.reconnect_on_eof:
                    return  # the source ended normally (end of file)
                raise EOFError("live source ended")
            except Exception as e:  # any decoder/network error: count, back off, reopen
                cause = type(e).__name__
                self.errors[cause] = self.errors.get(cause, 0) + 1
                log.warning("frame source failed (%s: %s); reconnecting in %.1fs", cause, e, delay)
                if self.on_error:
                    self.on_error(cause, e)
            finally:
                if self._source is not None:
                    try:
                        self._source.close()
                    except Exception:  # closing a dead source may fail too; nothing to do
                        pass
                    self._source = None
            if self.max_reconnects is not None and self.reconnects >= self.max_reconnects:
                return
            self.reconnects += 1
            t_offset += last_t + 1e-3
            self._sleep(delay)
            delay = min(delay * 2, self.max_backoff_s)

    def close(self) -> None:
        self._closed = True
