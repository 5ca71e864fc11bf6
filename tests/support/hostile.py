"""Hostile objects for the landing zone: names the lake API refuses (written under the API, as
another client could), videos that do not match their sidecars, and reading back quarantine."""

from __future__ import annotations

import io
import json
import os
from fractions import Fraction
from typing import Any

import numpy as np

from edge_agent.lake import Lake
from tests.support.clips import encode_h264


def put_raw(lake: Lake, key: str | bytes, data: bytes) -> None:
    """Write an object by any name, bypassing the lake's key checks (a hostile client): a file
    under a local lake, or a plain S3 put through obstore's own store."""
    if not lake.is_local:
        from urllib.parse import urlparse

        import obstore
        from obstore.store import S3Store

        url = urlparse(lake.uri)
        store = S3Store(url.netloc, prefix=url.path.strip("/") or None, **lake.s3.store_kwargs())
        obstore.put(store, key if isinstance(key, str) else os.fsdecode(key), data)
        return
    root = os.fsencode(str(lake.local_path()))
    name = key if isinstance(key, bytes) else os.fsencode(key)
    path = os.path.join(root, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def quarantine_records(lake: Lake) -> dict[str, dict[str, Any]]:
    """original key -> its reason record, for everything in quarantine."""
    out = {}
    for info in lake.list("depot/quarantine/"):
        if info.key.endswith(".reason.json"):
            rec = json.loads(lake.get(info.key))
            out[rec["key"]] = rec
    return out


def audio_only_mp4(seconds: float = 0.5) -> bytes:
    """A valid MP4 holding one AAC audio stream and no video."""
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("aac", rate=16000)
        samples = int(16000 * seconds)
        t = np.arange(samples, dtype=np.float32) / 16000
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def resolution_change_mp4(first: list[np.ndarray], second: list[np.ndarray], fps: int = 8) -> bytes:
    """An MP4 whose H.264 stream changes picture size mid-stream (new in-band SPS), as a broken
    device encoder could write it: two Annex B segments joined, then muxed without re-encoding."""
    import av

    raw = encode_h264(first, fps, "h264") + encode_h264(second, fps, "h264")
    out_buf = io.BytesIO()
    with av.open(io.BytesIO(raw), format="h264") as src, av.open(out_buf, mode="w", format="mp4") as dst:
        vin = src.streams.video[0]
        vout = dst.add_stream_from_template(vin)
        for i, packet in enumerate(src.demux(vin)):
            if packet.size == 0:
                continue
            packet.stream = vout
            packet.pts = packet.dts = i
            packet.time_base = vout.time_base = Fraction(1, fps)
            dst.mux(packet)
    return out_buf.getvalue()
