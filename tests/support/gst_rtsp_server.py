"""A real RTSP server for tests: GStreamer's gst-rtsp-server (Debian gir1.2-gst-rtsp-server-1.0,
python3-gi, gstreamer1.0-plugins-good/-bad), serving an H.264 MPEG-TS file at rtsp://127.0.0.1:PORT/cam
with only the lower transports asked for ("tcp": RTP interleaved in the RTSP connection, as cameras
behind NAT are read; "udp"). Run by the SYSTEM python (`/usr/bin/python3`, where python3-gi lives):

    /usr/bin/python3 tests/support/gst_rtsp_server.py PORT FILE tcp|udp|any
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

port, path, transport = sys.argv[1], sys.argv[2], sys.argv[3]
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(f'( filesrc location="{path}" ! tsdemux ! h264parse ! rtph264pay name=pay0 pt=96 '
                   "config-interval=1 )")
lower = GstRtsp.RTSPLowerTrans
factory.set_protocols({"tcp": lower.TCP, "udp": lower.UDP, "any": lower.TCP | lower.UDP}[transport])
server.get_mount_points().add_factory("/cam", factory)
server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
