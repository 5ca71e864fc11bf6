"""Quarantine: bad input leaves the landing zone for `depot/quarantine/`, with its reason beside it.

`landing/clips/<rest>` moves to `depot/quarantine/clips/<rest>` and a `<rest>.reason.json` names the
reason code (stable, for dashboards), a human detail and when. Moving is copy-then-delete, so a
crash in between leaves a duplicate, never a loss; re-quarantining the same key is harmless.

The bad name itself may be what is wrong (a backslash, a control character, a '..' segment, bytes
that are not UTF-8): then the target is `depot/quarantine/unsafe/<sha256 of the name>` and the
record keeps the original name, JSON-escaped. Quarantine never raises for a bad name: an object
the lake cannot address even through the unchecked calls is left in place and the record says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from edge_agent.contract.errors import ContractError
from edge_agent.contract.ids import validate_key
from edge_agent.lake import Lake, LakeError, ObjectNotFound
from flywheel.depot.config import QUARANTINE

log = logging.getLogger(__name__)

# Reason codes (the bad-input matrix of the Depot).
BAD_KEY = "bad_key"  # ids with '..', slashes, or a key outside the landing layout
BAD_DATE = "bad_date"  # a date= segment that is not a calendar date
CLIP_WITHOUT_SIDECAR = "clip_without_sidecar"
SIDECAR_WITHOUT_CLIP = "sidecar_without_clip"
OVERSIZE = "oversize"
BAD_SIDECAR = "bad_sidecar"
UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
SIDECAR_MISMATCH = "sidecar_key_mismatch"
SIZE_MISMATCH = "size_mismatch"
SHA256_MISMATCH = "sha256_mismatch"
UNDECODABLE = "undecodable"  # truncated or corrupt MP4
VIDEO_MISMATCH = "video_mismatch"  # codec, size or frame count differ from the sidecar
SIDECAR_CONFLICT = "sidecar_conflict"  # the sidecar changed after its clip was ingested
DUPLICATE_CLIP = "duplicate_clip"  # the same clip bytes already ingested under another key
INTERNAL_ERROR = "internal_error"  # anything unforeseen while processing one clip
REASON_EXT = ".reason.json"


@dataclass(frozen=True)
class Rejection:
    key: str  # original landing key (stem + extension)
    reason: str  # one of the codes above
    detail: str
    quarantine_key: str
    at: str
    moved: bool = True  # False: the object could not be moved and is still at `key`


def _name_bytes(key: str) -> bytes:
    # names listed from a local disk may carry lone surrogates (non-UTF-8 file names)
    return key.encode("utf-8", "surrogatepass")


def addressable(key: str) -> bool:
    """True when the lake API takes `key` as it is."""
    try:
        validate_key(key)
        key.encode("utf-8")
    except (ContractError, UnicodeEncodeError):
        return False
    return True


def quarantine_key_for(key: str, tag: str | None = None) -> str:
    """`depot/quarantine/<rest>` for a safe name (readable), else a digest of the name. `tag` keeps
    several versions of one key apart (a conflict keeps both)."""
    rest = key.split("/", 1)[1] if key.startswith("landing/") else key
    target = f"{QUARANTINE}/{rest}" + (f".{tag}" if tag else "")
    if addressable(target + REASON_EXT):
        return target
    digest = hashlib.sha256(_name_bytes(key)).hexdigest()[:32]
    return f"{QUARANTINE}/unsafe/{digest}" + (f".{tag}" if tag else "")


def _move(lake: Lake, key: str, target: str) -> bool:
    """Copy then delete; False when the object cannot be addressed at all."""
    safe = addressable(key)
    try:
        data = lake.get(key) if safe else lake.get_unchecked(key)
    except ObjectNotFound:
        return True  # already moved by an earlier attempt
    except (LakeError, OSError) as e:
        if safe:
            raise
        log.warning("cannot read %r to quarantine it: %s", key, e)
        return False
    lake.put(target, data)
    if safe:
        lake.delete(key)
    else:
        try:
            lake.delete_unchecked(key)
        except (LakeError, OSError) as e:
            log.warning("cannot delete %r after quarantining a copy: %s", key, e)
            return False
    return True


def quarantine(lake: Lake, key: str, reason: str, detail: str, *, now: datetime | None = None,
               tag: str | None = None) -> Rejection:
    """Move `key` into quarantine and write its reason next to it."""
    target = quarantine_key_for(key, tag)
    rej = Rejection(key=key, reason=reason, detail=detail[:2000], quarantine_key=target,
                    at=(now or datetime.now(UTC)).isoformat())
    extra = {"key_sha256": hashlib.sha256(_name_bytes(key)).hexdigest()}
    # the reason first: a crash after it leaves a record and the object still in landing (retried)
    lake.put(target + REASON_EXT, json.dumps(asdict(rej) | extra, indent=1).encode())
    if not _move(lake, key, target):
        rej = Rejection(**(asdict(rej) | {"moved": False}))
        lake.put(target + REASON_EXT, json.dumps(asdict(rej) | extra, indent=1).encode())
    return rej
