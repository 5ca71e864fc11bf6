"""TLS for one round's gRPC link: a throwaway CA and a server certificate, made at round time.

Flower's gRPC server takes `certificates=(ca, server cert, server key)` and its client
`root_certificates=ca`. The CA's PEM travels to the devices inside the signed round announcement
(flywheel.federated.announce), so a device trusts exactly this round's server: the CA's private key
signs the one server certificate and is then dropped (never written anywhere), so nobody can issue
a second certificate under it, and both expire with the round. An attacker on the path to the
server, or a server someone else starts at the announced address, has no certificate the devices
accept. The server certificate names the host devices dial (an IP SAN for an address, else a DNS
SAN), which gRPC checks.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class RoundTLS:
    ca_pem: bytes  # goes into the signed announcement; the devices' only trust anchor for the link
    cert_pem: bytes  # the server's certificate, signed by the CA
    key_pem: bytes  # the server's private key (in memory for the round only)
    not_after: datetime

    @property
    def certificates(self) -> tuple[bytes, bytes, bytes]:
        """What Flower's `start_grpc_server(certificates=...)` takes."""
        return self.ca_pem, self.cert_pem, self.key_pem


def _host(address: str) -> str:
    host = address.rpartition(":")[0] if ":" in address else address
    return host.strip("[]")


def round_certificates(address: str, valid_s: float, *, now: datetime | None = None) -> RoundTLS:
    """A CA + server certificate for `address` (host:port devices dial), valid `valid_s` seconds
    (from one minute back, for clock skew)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = now or datetime.now(UTC)
    start, end = now - timedelta(minutes=1), now + timedelta(seconds=valid_s)
    host = _host(address)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"flywheel round CA {now:%Y%m%dT%H%M%S}")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return RoundTLS(ca.public_bytes(pem), cert.public_bytes(pem),
                    key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()), end)
