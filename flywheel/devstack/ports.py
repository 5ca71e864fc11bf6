"""Free TCP ports on 127.0.0.1 for the local servers the dev stack starts."""

from __future__ import annotations

import socket


def free_ports(n: int, below: int = 65536) -> list[int]:
    """`n` distinct free ports under `below`. Every socket stays bound until all are drawn: drawn one
    at a time, the kernel may hand the same port out twice (CI saw a Ray worker-port list name 36141
    twice and the head refuse to start)."""
    socks: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if port < below and port not in ports:
                socks.append(s)
                ports.append(port)
            else:
                s.close()
        return ports
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]
