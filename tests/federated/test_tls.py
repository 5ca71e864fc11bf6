"""The round's gRPC link is TLS: a CA made at round time (cryptography), its certificate given to the
devices (in production inside the signed announcement: test_announce), real Flower over 127.0.0.1.
A device trusting the round's CA completes the round; one trusting another CA, and one expecting
TLS from a plaintext server, fail the handshake and send nothing."""

from __future__ import annotations

import ipaddress
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest

from edge_agent.federated.client import Participant, make_client
from flywheel.federated.server import free_address, run_round
from flywheel.federated.strategy import RoundConfig
from flywheel.federated.tls import round_certificates
from tests.federated.test_round import B0, FLEET, MODEL, W0, registered, store


def test_round_certificates_chain_to_a_throwaway_ca_and_name_the_dialled_host() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    now = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    tls = round_certificates("127.0.0.1:9092", 300, now=now)
    ca, cert = x509.load_pem_x509_certificate(tls.ca_pem), x509.load_pem_x509_certificate(tls.cert_pem)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ca.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                           ec.ECDSA(cert.signature_hash_algorithm))  # raises unless the CA signed it
    assert cert.issuer == ca.subject
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert cert.not_valid_after_utc == now + timedelta(seconds=300) == tls.not_after  # dies with the round
    assert b"PRIVATE KEY" not in tls.ca_pem + tls.cert_pem  # only the server's key is private
    named = x509.load_pem_x509_certificate(round_certificates("fl.example.com:443", 60).cert_pem)
    assert named.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
        .get_values_for_type(x509.DNSName) == ["fl.example.com"]
    # a fresh CA every time: last round's CA does not vouch for this round's server
    assert round_certificates("127.0.0.1:9092", 300).ca_pem != tls.ca_pem


def participant(address: str, i: int, ca: bytes | None) -> Participant:
    s = store(40, i)
    identity = registered(f"dev-{i}")
    return Participant(address, lambda: make_client(identity, s), retry_s=0.2,
                       root_certificates=ca).start()


def config(expected: int, window_s: float) -> RoundConfig:
    return RoundConfig(base_model=MODEL, min_devices=1, min_samples=10, connect_window_s=window_s,
                       expected_devices=expected, fit_timeout_s=8, epochs=5)


@pytest.mark.slow
def test_a_tls_round_takes_only_devices_that_trust_its_ca_and_tls_devices_refuse_plaintext() -> None:
    address = free_address()
    tls, other = round_certificates(address, 120), round_certificates(address, 120)
    trusting, wrong_ca = participant(address, 0, tls.ca_pem), participant(address, 1, other.ca_pem)
    try:
        head, report = run_round(address, config(2, 4), W0, B0, certificates=tls.certificates,
                                 key_of=FLEET.get)
        assert head is not None and report.connected == 1 and report.accepted == ["dev-0"]
        assert "handshake" in (wrong_ca.last_error or "").lower(), wrong_ca.last_error
        assert wrong_ca.rounds == 0
        # refused handshakes back off (0.2, 0.4, 0.8 ... s): each one is a "Handshake failed" line
        # in the server's log; retrying every 0.2 s would have been ~25 over the round
        assert 1 <= wrong_ca.refusals == wrong_ca.attempts <= 6, wrong_ca.attempts

        for _ in range(50):  # its session ends after the server's disconnect
            if trusting.rounds:
                break
            time.sleep(0.1)
        assert trusting.rounds == 1
        # while the server it just left still listens (a stopping server), the device does not
        # dial it again: plain TCP probes only, not one byte of a TLS handshake
        host, _, port = address.rpartition(":")
        with socket.create_server((host, int(port))) as lingering:
            lingering.settimeout(0.2)
            got = b""
            for _ in range(8):
                try:
                    conn, _ = lingering.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.settimeout(0.2)
                    try:
                        got += conn.recv(100)
                    except TimeoutError:
                        pass
            trusting.last_error = None  # from here on: what it sees once this server has gone
        assert got == b"" and trusting.attempts == 1, (got, trusting.attempts)

        # the same address serving plaintext (an impostor without the round's certificate): the
        # device has seen the old server gone, so this one is a new server it tries
        for _ in range(50):
            if "no round open" in (trusting.last_error or ""):
                break
            time.sleep(0.1)
        head, report = run_round(address, config(1, 3), W0, B0, key_of=FLEET.get)
        assert head is None and report.connected == 0
        assert trusting.rounds == 1 and trusting.refusals >= 1, (trusting.refusals, trusting.last_error)
    finally:
        trusting.stop()
        wrong_ca.stop()
