"""The device's own key for the federated link: it signs the device's join and update
(contract.federated.join_message / update_message), and the fleet, which registered its public half
(flywheel/federated/devices.py), refuses anyone else. Ed25519, made on the device at first start
and never leaving it; the file holds the 32-byte private seed, readable by the agent's user only.
"""

from __future__ import annotations

import os
from pathlib import Path


class DeviceKey:
    def __init__(self, private) -> None:  # an Ed25519PrivateKey
        self._private = private

    @classmethod
    def generate(cls) -> DeviceKey:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, path: str | Path) -> DeviceKey:
        """The key at `path`, made there (mode 0600, atomically) when absent."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        path = Path(path)
        if path.exists():
            return cls(Ed25519PrivateKey.from_private_bytes(path.read_bytes()))
        key = Ed25519PrivateKey.generate()
        raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
        return cls(key)

    @property
    def public_bytes(self) -> bytes:
        """The 32-byte public key the fleet registers for this device."""
        from cryptography.hazmat.primitives import serialization

        return self._private.public_key().public_bytes(serialization.Encoding.Raw,
                                                       serialization.PublicFormat.Raw)

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)
