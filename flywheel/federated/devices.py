"""The fleet's register of device keys: who may take part in a federated round.

    federated/devices/<device_id>.json   {"device_id", "public_key" (base64, Ed25519 raw), "registered_at"}

A device is registered when it is provisioned (its public key, made on the device:
edge_agent/federated/identity.py); the round's server looks up each device that joins and accepts
only a join and an update signed by that device's key (contract.federated.join_message /
update_message). Devices write only under `landing/`, so none can register itself. One object per
device: a round reads the keys of the devices that join, not the whole fleet's. Removing the object
revokes the device from the next round on.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from edge_agent.contract.errors import ContractError
from edge_agent.contract.ids import validate_id
from edge_agent.lake import Lake, ObjectNotFound

PREFIX = "federated/devices"


def _key(device_id: str) -> str:
    return f"{PREFIX}/{validate_id(device_id, 'device_id')}.json"


def register_device(lake: Lake, device_id: str, public_key: bytes) -> None:
    if len(public_key) != 32:
        raise ValueError(f"device {device_id}: an Ed25519 public key is 32 bytes, got {len(public_key)}")
    lake.put(_key(device_id), json.dumps({
        "device_id": device_id, "public_key": base64.b64encode(public_key).decode(),
        "registered_at": datetime.now(UTC).isoformat()}).encode())


def revoke_device(lake: Lake, device_id: str) -> None:
    """From the next round on, the device's joins are refused (unknown device)."""
    lake.delete(_key(device_id))


def registered_key(lake: Lake, device_id: str) -> bytes | None:
    """The device's registered public key, or None (unknown, revoked, or not a valid device id)."""
    try:
        doc = json.loads(lake.get(_key(device_id)))
        return base64.b64decode(doc["public_key"], validate=True)
    except (ObjectNotFound, ContractError, ValueError, KeyError, TypeError):
        return None  # ContractError: an id no device can have (a path, '..')


def verify(public_key: bytes, signature: object, message: bytes) -> bool:
    """Whether `signature` is `public_key`'s Ed25519 signature of `message`."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not isinstance(signature, bytes):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        return True
    except (InvalidSignature, ValueError):
        return False
