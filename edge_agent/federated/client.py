"""The device's Flower client: what it tells the server, and what it sends back from a round.

`get_properties` answers the server's selection (device, store, cohort, sample count, the embedding
space the samples were embedded in: contract.federated.embedding_space); `fit` adapts the round's
global head on the local samples and returns the new head, the sample count and metrics. Both are
signed with the device's key (identity.DeviceKey) over the round id and the server's nonce: the
fleet accepts only devices whose key it registered. Nothing else leaves the device: no image, no
embedding, no label list. `Participant` keeps one connection
attempt running in a thread: a round's server comes and goes, so a refused connection is normal and
retried. On a device it joins only rounds a signed announcement names
(`announce.RoundAnnouncements`): the announced server, and `fit` trains only from the announced base
model and global head (sha256), else contributes nothing, and it talks to that server over TLS,
trusting only the CA the announcement carries: a server without the round's certificate (a plaintext
one, one with another CA) fails the handshake and gets nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field

import numpy as np

from edge_agent.contract.federated import RoundAnnouncementV1, head_digest, join_message, update_message
from edge_agent.federated.head import HeadTraining, train_head
from edge_agent.federated.identity import DeviceKey
from edge_agent.federated.samples import SampleStore

log = logging.getLogger(__name__)
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # Flower's usage telemetry: never from a device


@dataclass(frozen=True)
class DeviceIdentity:
    device_id: str
    store_id: str
    cohort: str
    # signs the joins and updates; the fleet must have registered its public half (a fresh key,
    # the default, is one no fleet knows: such a device is refused)
    key: DeviceKey = field(default_factory=DeviceKey.generate, repr=False)


DEFAULT_TRAINING = HeadTraining()


def refusal(expect: RoundAnnouncementV1, w0: np.ndarray, b0: np.ndarray, config: dict) -> str:
    """Why the server's fit request is not the announced round ("" when it is)."""
    if config.get("round_id") != expect.round_id:
        return f"fit for round {config.get('round_id')!r}, the announcement is round {expect.round_id}"
    if str(config.get("base_model", "")) != expect.base_model:
        return f"base model {config.get('base_model')!r} is not the announced {expect.base_model!r}"
    if head_digest(w0, b0) != expect.head_sha256:
        return "the global head's sha256 is not the announced one (a rogue base head)"
    return ""


def make_client(identity: DeviceIdentity, store: SampleStore, training: HeadTraining = DEFAULT_TRAINING,
                expect: RoundAnnouncementV1 | None = None, on_refusal=None):
    """A flwr NumPyClient over the sample store (flwr imported here: an optional extra). With
    `expect` (the verified announcement) a fit that is not that round trains nothing and
    `on_refusal(reason)` is told why."""
    from flwr.client import NumPyClient

    class HeadClient(NumPyClient):
        def get_properties(self, config):
            props = {"device_id": identity.device_id, "store_id": identity.store_id,
                     "cohort": identity.cohort, "n_samples": len(store),
                     "embedding_space": store.space or ""}
            msg = join_message(int(config.get("round_id", 0)), str(config.get("nonce", "")), props)
            return {**props, "signature": identity.key.sign(msg)}

        def fit(self, parameters, config):
            head, n, metrics = self._fit(parameters, config)
            msg = update_message(int(config.get("round_id", 0)), str(config.get("nonce", "")),
                                 identity.device_id, n, head)
            return head, n, {**metrics, "signature": identity.key.sign(msg)}

        def _fit(self, parameters, config):
            w0, b0 = (np.asarray(p, np.float32) for p in parameters)
            why = refusal(expect, w0, b0, config) if expect is not None else ""
            if why:
                if on_refusal is not None:
                    on_refusal(why)
                return [w0, b0], 0, {"refused": 1}
            x, y = store.arrays()
            space = str(config.get("embedding_space") or config.get("base_model", ""))
            if not len(y) or store.space != space or x.shape[1] != w0.shape[0]:
                # samples of another backbone (or none): nothing to contribute this round
                return [w0, b0], 0, {"skipped": 1}
            cfg = HeadTraining(epochs=int(config.get("epochs", training.epochs)),
                               lr=float(config.get("lr", training.lr)),
                               prox_mu=float(config.get("prox_mu", training.prox_mu)),
                               l2=training.l2,
                               prior_adjust=bool(config.get("prior_adjust", training.prior_adjust)))
            w, b, metrics = train_head(x, y, w0, b0, cfg)
            return [w, b], int(len(y)), metrics

    return HeadClient()


class Participant:
    """Joins the rounds of one server (`server_address`), or with `announcements` those the
    signed announcements name, once each; stops when `stop()` is called (between rounds: an open
    round ends when the server disconnects its clients). `client_factory()` makes the Flower
    client of one session; `joining` is the announcement being joined (None without)."""

    def __init__(self, server_address: str, client_factory, retry_s: float = 2.0,
                 max_message_bytes: int = 64 * 1024 * 1024, announcements=None,
                 root_certificates: bytes | None = None) -> None:
        self.server_address, self.client_factory, self.retry_s = server_address, client_factory, retry_s
        self.root_certificates = root_certificates  # TLS to the fixed address (announced: its CA)
        self.max_message_bytes = max_message_bytes
        self.announcements = announcements  # an announce.RoundAnnouncements, or None
        self.joining: RoundAnnouncementV1 | None = None
        self.rounds = 0  # sessions that ended with the server's disconnect
        self.last_error: str | None = None
        self.attempts = 0  # TLS handshakes tried (probes)
        self.refusals = 0  # of which refused (the server lacks the trusted certificate): a log line each
        self.max_backoff_s = 60.0  # ceiling of the wait after repeated TLS refusals
        self._refused = 0  # TLS handshakes refused in a row (the wait doubles with each)
        self._left: str | None = None  # the fixed server whose round this device just finished
        self._trusted: bytes | None = None  # the CA the refusals above were counted against
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="federated", daemon=True)

    def start(self) -> Participant:
        import flwr.client  # noqa: F401  (imported here, once: concurrent first imports deadlock)
        import flwr.compat.client.app  # noqa: F401

        # Flower logs every message at INFO and a deprecation banner at each connection attempt
        # (every retry_s between rounds): a device keeps its own record (rounds, last_error)
        logging.getLogger("flwr").setLevel(logging.ERROR)

        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def refused(self, reason: str) -> None:
        self.last_error = f"round refused: {reason}"
        log.warning("federated: %s", self.last_error)

    def _server_listening(self, address: str, ca: bytes | None = None) -> bool:
        """A plain TCP probe first: between rounds nothing listens, and a gRPC channel per refused
        attempt would leave threads behind (Flower's legacy client does, in grpcio 1.85). With a
        CA the probe is a TLS handshake verified against it: a server without the round's
        certificate is refused here, with the reason, before any gRPC channel exists."""
        import socket
        import ssl

        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        try:
            with socket.create_connection((host, int(port)), timeout=2.0) as sock:
                if ca is None:
                    return True
                ctx = ssl.create_default_context(cadata=ca.decode("ascii"))
                ctx.set_alpn_protocols(["h2"])
                self.attempts += 1
                with ctx.wrap_socket(sock, server_hostname=host):
                    self._refused = 0
                    return True
        except ssl.SSLError as e:
            self.last_error = f"TLS handshake with {address} failed: {e}"
            self._refused += 1
            self.refusals += 1
            return False
        except OSError as e:
            self.last_error = f"no round open at {address}: {e}"
            return False

    def _wait_s(self) -> float:
        """retry_s, doubled per TLS refusal in a row up to max_backoff_s: a server that does not
        hold the certificate this device trusts (another round's, an impostor's) refuses every
        handshake, and each refusal is a line in its log ("Handshake failed"): a device retrying
        it every retry_s filled a 200-device bench's log with thousands of them."""
        return min(self.retry_s * 2 ** min(self._refused, 16), max(self.max_backoff_s, self.retry_s))

    def _trust(self, joining: RoundAnnouncementV1 | None) -> bytes | None:
        """The CA to verify the server with: the announcement's (None: plaintext)."""
        if joining is not None:
            return joining.tls_ca.encode("ascii") or None
        return self.root_certificates

    def _target(self, fresh: bool = False) -> str | None:
        """The address to join now: the fixed one, or the verified announcement's server."""
        if self.announcements is None:
            return self.server_address
        verdict = self.announcements.check(fresh=fresh)
        self.joining = verdict.announcement
        if verdict.announcement is None:
            self.last_error = verdict.reason
            return None
        return verdict.announcement.server

    def _run(self) -> None:
        from flwr.compat.client.app import start_client

        while not self._stop.is_set():
            address = self._target()
            if address is not None and address == self._left:
                # the server of the round this device just finished is still closing (it
                # disconnects every client, then stops): joining it again would only be cut off
                # by its stop. A plain TCP probe (no handshake, nothing for it to log) until it
                # has gone; the next round's server is then a new one.
                if self._server_listening(address):
                    self._stop.wait(self.retry_s)
                    continue
                self._left = None
            trust = self._trust(self.joining)
            if trust != self._trusted:  # a new round's CA: its server has not refused us yet
                self._trusted, self._refused = trust, 0
            if address is None or not self._server_listening(address, trust):
                self._stop.wait(self._wait_s())
                continue
            if self.announcements is not None and self._target(fresh=True) != address:
                continue  # a newer announcement than the cached one: follow that
            joining = self.joining
            ca = self._trust(joining)
            try:
                start_client(server_address=address, client=self.client_factory().to_client(),
                             grpc_max_message_length=self.max_message_bytes, insecure=ca is None,
                             root_certificates=ca)
                self.rounds += 1
                if joining is not None:  # one session per announced round, even across restarts
                    self.announcements.mark_joined(joining.round_id)
                else:
                    self._left = address
            except Exception as e:  # no server right now (between rounds), it went away, or TLS failed
                details = e.details() if callable(getattr(e, "details", None)) else str(e)
                self.last_error = f"{type(e).__name__}: {str(details)[:300]}"
            self._stop.wait(self.retry_s)
