"""The federated round announcement: the signed TUF target `federated/round.json` of a release
channel, the cloud's word that a round is open. A device joins a round only on a verified one.

It is published into the channel's TUF repository with the same online keys as a release (targets,
snapshot, timestamp), and the device reads it with python-tuf's `ngclient.Updater` from the same
trusted root as its OTA updates, so an attacker who can write the lake but holds no release key can
neither point devices at another server nor hand them another base head: the announcement names the
server, the base model and the sha256 of the global head the server must send (`head_digest`), and
the round's TLS CA certificate (`tls_ca`, PEM): a device dials the announced server over TLS trusting
only that CA, so neither a plaintext server nor one without the round's certificate gets its update.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from edge_agent.contract.schemas import _REGISTRY, SafeId, UtcTime, _Doc, _load_json, parse_document

ROUND_TARGET = "federated/round.json"


class RoundAnnouncementV1(_Doc):
    schema_: Literal["flywheel.federated_round"] = Field("flywheel.federated_round", alias="schema")
    schema_version: Literal[1] = 1
    channel: SafeId  # the release channel it was signed for (a copy from another channel is refused)
    round_id: Annotated[int, Field(ge=1)]  # increasing per channel: a device joins each round once
    server: Annotated[str, Field(min_length=3, max_length=255, pattern=r"^[\w.\-\[\]:]+:\d{1,5}$")]
    base_model: SafeId  # the model version whose embeddings the round's head reads
    head_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]  # head_digest of the global head
    cohorts: list[str] = []  # cohorts invited ([] = every cohort)
    # PEM of the round's throwaway CA (flywheel/federated/tls.py); "" = a plaintext round, which a
    # device refuses unless its config allows plaintext ([federated] require_tls = false)
    tls_ca: Annotated[str, Field(max_length=8192, pattern=r"^(|-----BEGIN CERTIFICATE-----[\s\S]+"
                                                          r"-----END CERTIFICATE-----\s*)$")] = ""
    published_at: UtcTime
    expires_at: UtcTime  # after this the round is over: the announcement is refused

    model_config = {"populate_by_name": True}


_REGISTRY["flywheel.federated_round"] = {1: RoundAnnouncementV1}


def parse_round_announcement(raw: bytes | str | dict[str, Any]) -> RoundAnnouncementV1:
    return parse_document(_load_json(raw), RoundAnnouncementV1)


def head_digest(w: np.ndarray, b: np.ndarray) -> str:
    """sha256 over the head's shapes and float32 bytes (what the server sends to a device)."""
    h = hashlib.sha256()
    for a in (w, b):
        a = np.ascontiguousarray(a, dtype=np.float32)
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


# The ONNX metadata_props key under which the cloud stamps the backbone's digest (the graph up to
# the `embedding` output: every node and weight but the final linear head; flywheel/learner/onnx_head)
BACKBONE_METADATA = "flywheel.backbone_sha256"


def embedding_space(backbone: str, labels: list[str]) -> str:
    """The key a device's samples are stored under, and a round's samples must match: the backbone
    (its digest, or "model:<version>" for a model without one) and the label list the sample label
    indices refer to. A federated candidate changes only the head: same key, the samples stay."""
    h = hashlib.sha256(backbone.encode())
    h.update(b"\n".join(lab.encode() for lab in labels))
    return h.hexdigest()[:24]


# Device authentication on the round's link (TLS authenticates the server; this, the device): a
# device holds an Ed25519 key (edge_agent/federated/identity.py) whose public half the fleet
# registered (flywheel/federated/devices.py). It signs its join (the properties selection reads)
# and its update, each bound to the round id and the server's fresh nonce for the round, so a
# process without a registered key cannot take part, nor replay an earlier round's signed answer.
JOIN_PURPOSE = b"flywheel.federated.join.v1\0"
UPDATE_PURPOSE = b"flywheel.federated.update.v1\0"


def _canonical(doc: dict) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def join_message(round_id: int, nonce: str, properties: dict) -> bytes:
    """What a device signs when it answers selection: its properties (less the signature) for this
    round and nonce."""
    body = {k: v for k, v in properties.items() if k != "signature"}
    return JOIN_PURPOSE + _canonical({"round_id": round_id, "nonce": nonce, "properties": body})


def arrays_digest(arrays: list[np.ndarray]) -> str:
    """sha256 over each array's dtype, shape and bytes, as they travel (Flower keeps the dtype)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def update_message(round_id: int, nonce: str, device_id: str, num_examples: int,
                   arrays: list[np.ndarray]) -> bytes:
    """What a device signs when it returns its update: the head it sends and the sample count its
    weight in the average comes from."""
    return UPDATE_PURPOSE + _canonical({"round_id": round_id, "nonce": nonce, "device_id": device_id,
                                        "num_examples": int(num_examples),
                                        "arrays_sha256": arrays_digest(arrays)})
