"""Release signing keys (Ed25519, TUF roles).

`keygen` writes one PEM (PKCS#8) private key per role into a directory:

    root.pem       OFFLINE: needed only to create a channel and to rotate keys; move it off the
                   machine that runs releases
    targets.pem    online: signs what is released (model, card, golden inputs, rule sets, rollout)
    snapshot.pem   online: signs the consistent view of all targets metadata
    timestamp.pem  online: signs freshness; re-signed by a schedule before it expires

Online keys reach runs as secrets: a directory (`FLYWHEEL_RELEASE_KEYS_DIR`) or one PEM per role in
`FLYWHEEL_RELEASE_<ROLE>_KEY` (EnvVar in Dagster). Nothing here is read at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ROLES = ("root", "targets", "snapshot", "timestamp")
ONLINE_ROLES = ("targets", "snapshot", "timestamp")
KEYS_DIR_ENV = "FLYWHEEL_RELEASE_KEYS_DIR"


class SigningKeyError(Exception):
    """A signing key is missing or unreadable; the message names the role and where it looked."""


def env_var(role: str) -> str:
    return f"FLYWHEEL_RELEASE_{role.upper()}_KEY"


@dataclass
class ReleaseKeys:
    """Signers by role (securesystemslib CryptoSigner); the root signer is usually absent."""

    signers: dict = field(default_factory=dict)  # role -> CryptoSigner

    def signer(self, role: str):
        try:
            return self.signers[role]
        except KeyError:
            hint = ("the offline root key is needed only to create a channel or rotate keys"
                    if role == "root" else f"set {env_var(role)} or {KEYS_DIR_ENV}")
            raise SigningKeyError(f"no {role} signing key loaded ({hint})") from None

    def public_key(self, role: str):
        return self.signer(role).public_key


def signer_from_pem(pem: bytes):
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from securesystemslib.signer import CryptoSigner

    return CryptoSigner(load_pem_private_key(pem, None))


def _write_private(path: Path, pem: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.replace(tmp, path)


def generate_key(keys_dir: str | Path, role: str) -> Path:
    """A fresh Ed25519 key for `role`, written atomically to <keys_dir>/<role>.pem (mode 600)."""
    from securesystemslib.signer import CryptoSigner

    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles are {ROLES}")
    d = Path(keys_dir)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{role}.pem"
    _write_private(path, CryptoSigner.generate_ed25519().private_bytes)
    return path


def keygen(keys_dir: str | Path, *, overwrite: bool = False) -> dict[str, Path]:
    """Create the root key and the three online keys; refuses to replace existing keys."""
    d = Path(keys_dir)
    existing = [r for r in ROLES if (d / f"{r}.pem").exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{d}: keys already exist for {existing}; rotate them instead")
    return {role: generate_key(d, role) for role in ROLES}


def load_keys(keys_dir: str | Path | None = None, roles: tuple[str, ...] = ROLES) -> ReleaseKeys:
    """Signers for the roles found: per-role env vars first, then the keys directory."""
    folder = keys_dir or os.environ.get(KEYS_DIR_ENV)
    signers = {}
    for role in roles:
        pem: bytes | None = None
        if os.environ.get(env_var(role)):
            pem = os.environ[env_var(role)].encode()
        elif folder and (Path(folder) / f"{role}.pem").is_file():
            pem = (Path(folder) / f"{role}.pem").read_bytes()
        if pem is None:
            continue
        try:
            signers[role] = signer_from_pem(pem)
        except Exception as e:  # cryptography raises ValueError/TypeError/UnsupportedAlgorithm
            raise SigningKeyError(f"{role} key: not a PEM private key ({type(e).__name__}: {e})") from None
    return ReleaseKeys(signers)
