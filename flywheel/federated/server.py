"""One federated round: a Flower server on a gRPC port for as long as the round takes.

Flower's legacy gRPC transport (`start_grpc_server` + `Server`, what `flwr.server.start_server`
runs; deprecated since 1.13 in favour of SuperLink/SuperNode processes, still shipped in 1.42)
lets the round live inside one Dagster step: started, run for one round, stopped. We call its
parts rather than `start_server`, which installs signal handlers and so works only on the main
thread.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

import numpy as np

from flywheel.federated.strategy import RoundConfig, RoundReport, make_strategy

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # Flower's usage telemetry stays off
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # a head of 1280 x 1000 float32 is 5 MB; larger is refused


def run_round(address: str, cfg: RoundConfig, w0: np.ndarray, b0: np.ndarray, *,
              key_of: Callable[[str], bytes | None],
              max_message_bytes: int = MAX_MESSAGE_BYTES,
              certificates: tuple[bytes, bytes, bytes] | None = None
              ) -> tuple[tuple[np.ndarray, np.ndarray] | None, RoundReport]:
    """Serve one round on `address` ("127.0.0.1:PORT"); returns (new head or None, report).
    Only devices whose joins and updates verify with `key_of(device_id)` (the fleet's register:
    flywheel.federated.devices.registered_key) take part. With `certificates` (CA, server cert,
    server key: flywheel.federated.tls) the link is TLS and only clients that trust the CA
    complete the handshake; without, plaintext gRPC."""
    from flwr.server import Server, SimpleClientManager
    from flwr.server.superlink.fleet.grpc_bidi.grpc_server import start_grpc_server

    _quiet_closed_bridges()
    report = RoundReport()
    strategy = make_strategy(cfg, np.asarray(w0, np.float32), np.asarray(b0, np.float32), report,
                             key_of)
    server = Server(client_manager=SimpleClientManager(), strategy=strategy)
    t0 = time.perf_counter()
    grpc_server = start_grpc_server(client_manager=server.client_manager(), server_address=address,
                                    max_message_length=max_message_bytes, certificates=certificates)
    try:
        server.fit(num_rounds=1, timeout=cfg.fit_timeout_s)
    finally:
        server.disconnect_all_clients(timeout=min(cfg.fit_timeout_s, 10.0))
        grpc_server.stop(grace=1)
    report.seconds = time.perf_counter() - t0
    if strategy.result is None and not report.skipped:
        report.skipped = "no aggregate"
    return strategy.result, report


def free_address(host: str = "127.0.0.1") -> str:
    """host:port with a port free right now (the OS picks it)."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return f"{host}:{s.getsockname()[1]}"



class _DropClosedBridge(logging.Filter):
    """Drops grpc's "Exception iterating responses" when the exception is Flower's GrpcBridgeClosed.

    Why: at shutdown the round disconnects its clients, then stops the gRPC server; every client
    stream whose bridge is closed by then ends its Join generator with GrpcBridgeClosed instead of
    StopIteration, and grpc logs that at ERROR with a traceback, one per stream (a 200-device round
    printed ~190 of them after it had completed). It is the normal end of a stream, not a fault:
    a real failure (a device that drops mid-round) is counted in the round's report."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return type(exc).__name__ != "GrpcBridgeClosed"


def _quiet_closed_bridges() -> None:
    server_log = logging.getLogger("grpc._server")
    if not any(isinstance(f, _DropClosedBridge) for f in server_log.filters):
        server_log.addFilter(_DropClosedBridge())
