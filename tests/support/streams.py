"""Real camera streams on 127.0.0.1 for the agent's source tests, served by ffmpeg (Debian package):

- HTTP: ffmpeg's own HTTP server (`-listen 1`) sending MPEG-TS, as many IP cameras do;
- RTSP: `rtsp-server-perl` (Debian package) relaying what ffmpeg pushes (ANNOUNCE/RECORD) to
  clients (DESCRIBE/SETUP/PLAY, RTP over UDP), the way a camera or an NVR serves RTSP;
- RTSP over TCP: rtsp-server-perl answers only UDP SETUPs (it needs client_port), so interleaved
  TCP is served by GStreamer's gst-rtsp-server (`GstRtspCamera`, tests/support/gst_rtsp_server.py).

Each server is a process group of its own, so a test can stall it (SIGSTOP), drop it (SIGKILL) and
bring it back on the same port.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from flywheel.devstack.ports import free_port


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{missing} not installed (apt-get install -y ffmpeg rtsp-server-perl)")


def make_ts(path: Path, size: str = "320x240", seconds: float = 2.0, fps: int = 15,
            pattern: str = "testsrc") -> Path:
    """An H.264 MPEG-TS test clip (a GOP per second so a client can start anywhere soon)."""
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"{pattern}=size={size}:rate={fps}:duration={seconds}", "-c:v", "libx264",
                    "-preset", "ultrafast", "-tune", "zerolatency", "-g", str(fps), "-pix_fmt", "yuv420p",
                    "-f", "mpegts", str(path)], check=True, timeout=60)
    return path


def _wait_port(port: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


class Proc:
    """One server process (group): start, stall, resume, kill, restart."""

    def __init__(self, argv: list[str], port: int | None = None) -> None:
        self.argv, self.port = argv, port
        self.p: subprocess.Popen | None = None

    def start(self) -> Proc:
        self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        return self

    def signal(self, sig: int) -> None:
        if self.p is not None and self.p.poll() is None:
            os.killpg(self.p.pid, sig)

    def stall(self) -> None:
        self.signal(signal.SIGSTOP)

    def kill(self) -> None:
        if self.p is not None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGKILL)
            self.p.wait(10)
            self.p = None

    def restart(self) -> None:
        self.kill()
        self.start()


def http_server(clip: Path, port: int) -> Proc:
    """Loops `clip` in real time to one HTTP client at http://127.0.0.1:port/cam.ts."""
    return Proc(["ffmpeg", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip),
                 "-c", "copy", "-f", "mpegts", "-listen", "1", f"http://127.0.0.1:{port}/cam.ts"], port)


class RtspCamera:
    """rtsp-server-perl on `port` (clients) with ffmpeg pushing `clip` in a loop to its source port."""

    def __init__(self, clip: Path) -> None:
        self.port, src_port = free_port(), free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/cam"
        self.server = Proc(["rtsp-server-perl", "--clientport", str(self.port), "--serverport",
                            str(src_port), "--client_listen_address", "127.0.0.1",
                            "--source_listen_address", "127.0.0.1", "--rtp_start_port",
                            str(20000 + free_port() % 20000), "--loglevel", "1"], self.port)
        self.src_port = src_port
        self.pusher = Proc(["ffmpeg", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip),
                            "-c", "copy", "-f", "rtsp", f"rtsp://127.0.0.1:{src_port}/cam"])

    def up(self) -> None:
        self.server.start()
        _wait_port(self.port)
        _wait_port(self.src_port)
        self.pusher.start()
        time.sleep(1.0)  # the relay has the stream's SDP once the pusher's ANNOUNCE went through

    def down(self) -> None:
        """The camera loses power: encoder and server gone, the port refuses connections."""
        self.pusher.kill()
        self.server.kill()

    def __enter__(self) -> RtspCamera:
        self.up()
        return self

    def __exit__(self, *exc) -> None:
        self.down()


SYSTEM_PYTHON = "/usr/bin/python3"  # where Debian's python3-gi lives (not in the project's venv)


def need_gst_rtsp() -> None:
    probe = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
             "from gi.repository import Gst; Gst.init(None);"
             "assert all(Gst.ElementFactory.find(e) for e in ('tsdemux', 'h264parse', 'rtph264pay'))")
    ok = Path(SYSTEM_PYTHON).exists() and subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True,
                                                         timeout=30).returncode == 0
    if not ok:
        pytest.skip("GStreamer RTSP server not installed (apt-get install -y --no-install-recommends "
                    "python3-gi "
                    "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)")


class GstRtspCamera:
    """gst-rtsp-server on a free port serving `clip` over the given lower transport only."""

    def __init__(self, clip: Path, transport: str) -> None:
        self.port = free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/cam"
        script = Path(__file__).with_name("gst_rtsp_server.py")
        self.server = Proc([SYSTEM_PYTHON, str(script), str(self.port), str(clip), transport], self.port)

    def __enter__(self) -> GstRtspCamera:
        self.server.start()
        _wait_port(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.kill()
