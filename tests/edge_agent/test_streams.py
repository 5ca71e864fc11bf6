"""The agent's camera sources against real streams on 127.0.0.1 (tests/support/streams.py): an HTTP
MPEG-TS camera served by ffmpeg and an RTSP camera (rtsp-server-perl relaying ffmpeg), including a
stream that stalls, one that drops and comes back, and one that changes resolution mid-stream."""

from __future__ import annotations

import glob
import io
import itertools
import os
from pathlib import Path

import av
import numpy as np
import pytest

from edge_agent.sources import AvSource, ReconnectingSource
from tests.edge_agent.conftest import capture_config, lake_clips
from tests.support.streams import (
    GstRtspCamera,
    RtspCamera,
    free_port,
    http_server,
    make_ts,
    need,
    need_gst_rtsp,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    need("ffmpeg")
    return make_ts(tmp_path_factory.mktemp("cam") / "cam.ts", "320x240", seconds=2.0)


def _take(source, n: int) -> list:
    frames = list(itertools.islice(iter(source), n))
    source.close()
    return frames


def test_http_camera(clip):
    port = free_port()
    cam = http_server(clip, port).start()
    try:
        src = ReconnectingSource(lambda: AvSource(f"http://127.0.0.1:{port}/cam.ts", timeout_s=5),
                                 backoff_s=0.2, max_reconnects=20)  # ffmpeg listens a moment late
        frames = _take(src, 40)
    finally:
        cam.kill()
    assert len(frames) == 40 and {f.image.shape for f in frames} == {(240, 320, 3)}
    ts = [f.t for f in frames]
    assert ts == sorted(ts) and ts[-1] - ts[0] == pytest.approx(39 / 15, abs=0.05)  # the stream's pts
    assert frames[5].image.std() > 20  # decoded picture content, not a blank buffer


def test_rtsp_camera(clip):
    need("ffmpeg", "rtsp-server-perl")
    with RtspCamera(clip) as cam:
        src = AvSource(cam.url, options={"rtsp_transport": "udp"}, timeout_s=5)
        frames = _take(src, 30)
    assert len(frames) == 30 and {f.image.shape for f in frames} == {(240, 320, 3)}
    assert [f.t for f in frames] == sorted(f.t for f in frames)


def _agent_source(tmp_path: Path, url: str, transport: str):
    """The agent's own source, built from an agent.toml that names the transport."""
    from edge_agent.config import load_config
    from edge_agent.runtime import build_source

    (tmp_path / "agent.toml").write_text(f"""
device_id = "cart-rtsp"
store_id = "A"
[source]
url = "{url}"
rtsp_transport = "{transport}"
max_reconnects = 0
[model]
dir = "model"
[triggers]
version = "1"
[[triggers.rules]]
name = "move"
when = "motion(8)"
[spool]
dir = "spool"
[upload]
lake = "{(tmp_path / 'lake').as_uri()}"
""")
    return build_source(load_config(tmp_path / "agent.toml"))


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_rtsp_camera_over_tcp_or_udp_as_configured(tmp_path_factory, tmp_path, transport):
    """A camera that offers only one lower transport (RTP interleaved in the RTSP TCP connection,
    or RTP over UDP): the agent reads it when its config names that transport, and a client asking
    for the other one is refused, so the option is what carries the stream."""
    need("ffmpeg")
    need_gst_rtsp()
    clip6 = make_ts(tmp_path_factory.mktemp("cam6") / "cam6.ts", "320x240", seconds=6.0)
    with GstRtspCamera(clip6, transport) as cam:
        frames = _take(_agent_source(tmp_path, cam.url, transport), 30)
        other = AvSource(cam.url, options={"rtsp_transport": "udp" if transport == "tcp" else "tcp"},
                         timeout_s=3)
        with pytest.raises(av.error.FFmpegError):
            _take(other, 1)
    assert len(frames) == 30 and {f.image.shape for f in frames} == {(240, 320, 3)}
    ts = [f.t for f in frames]
    assert ts == sorted(ts) and frames[5].image.std() > 20
    with pytest.raises(Exception, match="source.rtsp_transport"):
        _agent_source(tmp_path, cam.url, "http")


def test_stalled_http_camera_times_out_and_reconnects(clip):
    """The server stops sending but keeps the connection open (SIGSTOP): the read times out instead
    of hanging the agent, the failure is counted, and frames flow again from the restarted camera."""
    port = free_port()
    cam = http_server(clip, port).start()
    causes: list[str] = []

    def on_error(cause: str, _e: Exception) -> None:
        causes.append(cause)
        if len(causes) == 1:
            cam.restart()  # the camera reboots after the stall

    src = ReconnectingSource(lambda: AvSource(f"http://127.0.0.1:{port}/cam.ts", timeout_s=1.5),
                             backoff_s=0.2, max_reconnects=30, on_error=on_error)
    frames = []
    try:
        for f in src:
            frames.append(f)
            if len(frames) == 15 and not causes:
                cam.stall()
            if len(frames) == 45:
                break
        src.close()
    finally:
        cam.kill()
    assert causes and len(frames) == 45
    ts = [f.t for f in frames]
    assert ts == sorted(ts) and len(set(ts)) == 45  # monotonic across the reconnect
    assert src.reconnects >= 1 and sum(src.errors.values()) == len(causes)


def test_rtsp_camera_drops_and_comes_back(clip):
    """The camera goes off (server and encoder gone) mid-stream: the client sees the stream end or
    time out, then refused connections, backs off, and reads again once the camera is back."""
    need("ffmpeg", "rtsp-server-perl")
    with RtspCamera(clip) as cam:
        causes: list[str] = []

        def on_error(cause: str, _e: Exception) -> None:
            causes.append(cause)
            if len(causes) == 2:
                cam.up()  # back after two failed attempts

        src = ReconnectingSource(lambda: AvSource(cam.url, options={"rtsp_transport": "udp"}, timeout_s=2),
                                 reconnect_on_eof=True, backoff_s=0.3, max_reconnects=30,
                                 on_error=on_error)
        frames = []
        for f in src:
            frames.append(f)
            if len(frames) == 15 and not causes:
                cam.down()
            if len(frames) == 40:
                break
        src.close()
    assert len(causes) >= 2 and len(frames) == 40
    assert src.reconnects >= 2
    assert [f.t for f in frames] == sorted(f.t for f in frames)


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_resolution_change_mid_stream(tmp_path, clip, make_agent, local_lake, isolation):
    """A camera switching from 320x240 to 640x480 within one HTTP stream: the source yields both
    sizes, and the agent keeps running and capturing across the change."""
    big = make_ts(tmp_path / "big.ts", "640x480", seconds=2.0, pattern="testsrc2")
    both = tmp_path / "both.ts"
    both.write_bytes(clip.read_bytes() + big.read_bytes())  # MPEG-TS concatenates byte-wise
    port = free_port()
    cam = http_server(both, port).start()
    try:
        src = ReconnectingSource(lambda: AvSource(f"http://127.0.0.1:{port}/cam.ts", timeout_s=5),
                                 backoff_s=0.2, max_reconnects=20)
        frames = _take(src, 55)
    finally:
        cam.kill()
    sizes = [f.image.shape for f in frames]
    assert sizes[0] == (240, 320, 3) and sizes[-1] == (480, 640, 3)
    assert sizes == sorted(sizes)  # one switch, no flapping
    agent = make_agent(local_lake, capture=capture_config(pre_roll_s=0.5, post_roll_s=3.0, max_clip_s=10,
                                                          isolation=isolation))
    for f in frames:
        f.image = np.ascontiguousarray(f.image)
        agent.process(f)
    totals = agent.close(drain_timeout=30)
    assert totals["frames"] == 55 and totals["uploaded_clips"] == totals["captures"] == 1
    # the clip spans the switch: one H.264 stream at the first size, later frames scaled into it
    (mp4,), _ = lake_clips(local_lake)
    with av.open(io.BytesIO(local_lake.get(mp4))) as c:
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(decoded) > 31 and {d.shape for d in decoded} == {(240, 320, 3)}


@pytest.mark.skipif(not any(os.access(d, os.W_OK) for d in glob.glob("/dev/video*")),
                    reason="no writable /dev/video* (needs a camera or the v4l2loopback kernel module)")
def test_v4l2_camera(clip):
    """With a v4l2loopback device, ffmpeg plays the clip into it and the agent reads it as a camera."""
    import subprocess

    dev = sorted(d for d in glob.glob("/dev/video*") if os.access(d, os.W_OK))[0]
    feeder = subprocess.Popen(["ffmpeg", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip),
                               "-pix_fmt", "yuv420p", "-f", "v4l2", dev], start_new_session=True)
    try:
        frames = _take(ReconnectingSource(lambda: AvSource(dev, format="v4l2", timeout_s=5),
                                          backoff_s=0.3, max_reconnects=10), 20)
    finally:
        feeder.kill()
        feeder.wait(10)
    assert len(frames) == 20 and frames[0].image.shape == (240, 320, 3)
