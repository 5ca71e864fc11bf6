"""The lake layout: every key devices and the cloud agree on is built and parsed here.

    landing/clips/device=D/date=YYYY-MM-DD/store=S/<clip_id>.mp4   clip (H.264)
    landing/clips/device=D/date=YYYY-MM-DD/store=S/<clip_id>.json  sidecar, written LAST
    landing/clips/date=YYYY-MM-DD/store=S/device=D/<clip_id>.*     layout 1 (before 2026-12): still
                                                                   read, no longer written
    landing/arrivals/YYYYMMDD/HHMM/<ts>~<date>~<store>~<device>~<clip_id>[~L2]
                                                                   empty marker put after the sidecar:
                                                                   the arrival log, in upload-time order
    landing/status/device=D/<ts>.json                              status reports
    landing/corrections/<batch>.json                               correction batches
    depot/...  datasets/<version>/  models/<model_id>/             cloud-owned
    releases/<channel>/metadata/<N>.root.json, timestamp.json,      a TUF repository per channel
                      <N>.snapshot.json, <N>.targets.json           (python-tuf, consistent snapshots)
    releases/<channel>/targets/<dir>/<sha256>.<name>               content-addressed release artifacts
    releases/<channel>/manifest.json (+ manifest.json.sig)          retired hand-made scheme (pre-TUF)

The device comes first in a clip key (layout 2) so object-store credentials can confine each
device's writes to `landing/clips/device=D/` and `landing/status/device=D/` with plain prefix
rules (`device_write_prefixes`). Layout 1 put the date first, which no prefix rule can confine.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from edge_agent.contract.errors import ContractError
from edge_agent.contract.ids import validate_id, validate_key

LANDING_CLIPS = "landing/clips"
LANDING_STATUS = "landing/status"
LANDING_CORRECTIONS = "landing/corrections"
LANDING_ARRIVALS = "landing/arrivals"
DEPOT = "depot"
DATASETS = "datasets"
MODELS = "models"
RELEASES = "releases"

CLIP_EXT = ".mp4"
SIDECAR_EXT = ".json"
CLIP_ID_LEN = 32  # hex chars of the clip's sha256: content-derived, so re-uploads are idempotent

LAYOUT = 2  # the clip-key layout devices write now
_CLIP_KEY_RE = {
    2: re.compile(r"landing/clips/device=(?P<device>[^/]+)/date=(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})"
                  r"/store=(?P<store>[^/]+)/(?P<clip_id>[^/]+)(?P<ext>\.mp4|\.json)"),
    1: re.compile(r"landing/clips/date=(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})/store=(?P<store>[^/]+)"
                  r"/device=(?P<device>[^/]+)/(?P<clip_id>[^/]+)(?P<ext>\.mp4|\.json)"),
}
_ARRIVAL_LAYOUT_TAG = "L2"  # last field of a layout-2 arrival marker; layout-1 markers have none


def clip_id_from_sha256(sha256_hex: str) -> str:
    """The clip id is derived from the clip's content, never from a clock or a counter."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha256_hex):
        raise ContractError("sha256", f"must be 64 lowercase hex characters, got {sha256_hex!r}")
    return sha256_hex[:CLIP_ID_LEN]


def clip_id_for_bytes(data: bytes) -> str:
    return clip_id_from_sha256(hashlib.sha256(data).hexdigest())


def validate_date(value: str | date, field: str = "date") -> str:
    """A calendar date in ASCII YYYY-MM-DD (`\\d` would also take Unicode digits like '٢')."""
    text = value.isoformat() if isinstance(value, date) else value
    if not isinstance(text, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        raise ContractError(field, f"must be an ISO date YYYY-MM-DD, got {value!r}")
    try:
        date.fromisoformat(text)
    except ValueError:
        raise ContractError(field, f"{text!r} is not a calendar date") from None
    return text


def device_clips_prefix(device_id: str) -> str:
    """Every clip a device writes (layout 2) is under this prefix."""
    return f"{LANDING_CLIPS}/device={validate_id(device_id, 'device_id')}"


def clip_prefix(day: str | date, store_id: str, device_id: str, layout: int = LAYOUT) -> str:
    day, store = validate_date(day), validate_id(store_id, "store_id")
    if layout == 1:
        return f"{LANDING_CLIPS}/date={day}/store={store}/device={validate_id(device_id, 'device_id')}"
    return f"{device_clips_prefix(device_id)}/date={day}/store={store}"


def clip_key(day: str | date, store_id: str, device_id: str, clip_id: str, layout: int = LAYOUT) -> str:
    return f"{clip_prefix(day, store_id, device_id, layout)}/{validate_id(clip_id, 'clip_id')}{CLIP_EXT}"


def sidecar_key(day: str | date, store_id: str, device_id: str, clip_id: str, layout: int = LAYOUT) -> str:
    return f"{clip_prefix(day, store_id, device_id, layout)}/{validate_id(clip_id, 'clip_id')}{SIDECAR_EXT}"


def day_prefix(day: str | date) -> str:
    """A day's clips in layout 1 (date first); layout 2 keeps each day under its device:
    `device_day_prefix`."""
    return f"{LANDING_CLIPS}/date={validate_date(day)}"


def device_day_prefix(device_id: str, day: str | date) -> str:
    return f"{device_clips_prefix(device_id)}/date={validate_date(day)}"


def device_write_prefixes(device_id: str) -> tuple[str, ...]:
    """Where a device writes: its clips, its status reports, and the shared arrival log (empty
    markers that only wake the sensor: the ingest trusts a clip only under its device's prefix)."""
    device = validate_id(device_id, "device_id")
    return (device_clips_prefix(device) + "/", f"{LANDING_STATUS}/device={device}/", LANDING_ARRIVALS + "/")


@dataclass(frozen=True)
class ClipKey:
    """A parsed landing key: which clip, and whether this object is the video or its sidecar."""

    date: str
    store_id: str
    device_id: str
    clip_id: str
    kind: Literal["clip", "sidecar"]
    layout: int = LAYOUT  # 1: date first (read only), 2: device first

    @property
    def clip_key(self) -> str:
        return clip_key(self.date, self.store_id, self.device_id, self.clip_id, self.layout)

    @property
    def sidecar_key(self) -> str:
        return sidecar_key(self.date, self.store_id, self.device_id, self.clip_id, self.layout)


def parse_clip_key(key: str) -> ClipKey:
    """Parse a landing clip or sidecar key; raise ContractError naming what is wrong."""
    validate_key(key)
    for layout, pattern in _CLIP_KEY_RE.items():
        m = pattern.fullmatch(key)
        if m:
            return ClipKey(
                date=validate_date(m["date"]),
                store_id=validate_id(m["store"], "store_id"),
                device_id=validate_id(m["device"], "device_id"),
                clip_id=validate_id(m["clip_id"], "clip_id"),
                kind="clip" if m["ext"] == CLIP_EXT else "sidecar",
                layout=layout,
            )
    raise ContractError("key", f"not a landing clip key: {key!r}")


def timestamp_id(at: datetime) -> str:
    """A sortable, key-safe UTC timestamp: 20261125T101500.123456Z."""
    if at.tzinfo is None:
        raise ContractError("timestamp", "must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def parse_timestamp_id(ts: str, field: str = "timestamp") -> datetime:
    """The UTC time of a `timestamp_id`; ContractError when the shape or the time is impossible
    (month 13, second 99, Unicode digits)."""
    if not isinstance(ts, str) or not re.fullmatch(r"[0-9]{8}T[0-9]{6}\.[0-9]{6}Z", ts):
        raise ContractError(field, f"must look like 20261125T101500.123456Z, got {ts!r}")
    try:
        return datetime.strptime(ts, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        raise ContractError(field, f"{ts!r} is not a real time") from None


def arrival_key(at: datetime, day: str | date, store_id: str, device_id: str, clip_id: str,
                layout: int = LAYOUT) -> str:
    """The arrival marker a device puts (empty) right after a clip's sidecar.

    Clip keys sort by content hash, so a new clip usually lands BEHIND any start-after cursor over
    landing/clips/; arrival keys sort by upload time, so the
    cloud's sensor finds every new clip with one listing after its cursor: O(new) per tick
    (minute folders keep a local lake's listing from sorting a busy hour at every tick).
    `~` cannot occur in ids, so the key parses back unambiguously (`parse_arrival_key`); a
    layout-2 clip's marker ends in `~L2`, so markers of clips landed in layout 1 still resolve.
    """
    ts = timestamp_id(at)
    parts = [validate_date(day), validate_id(store_id, "store_id"), validate_id(device_id, "device_id"),
             validate_id(clip_id, "clip_id")]
    if layout == 2:
        parts.append(_ARRIVAL_LAYOUT_TAG)
    return f"{LANDING_ARRIVALS}/{ts[:8]}/{ts[9:13]}/{ts}~{'~'.join(parts)}"


def parse_arrival_key(key: str) -> tuple[str, ClipKey]:
    """(upload timestamp id, the clip's sidecar ClipKey) of an arrival marker key."""
    validate_key(key)
    name = key.rsplit("/", 1)[-1]
    fields = name.split("~")
    layout = 1
    if len(fields) == 6 and fields[-1] == _ARRIVAL_LAYOUT_TAG:
        fields, layout = fields[:-1], 2
    if not key.startswith(LANDING_ARRIVALS + "/") or len(fields) != 5:
        raise ContractError("key", f"not an arrival key: {key!r}")
    ts, day, store, device, clip_id = fields
    try:
        parse_timestamp_id(ts)
    except ContractError as e:
        raise ContractError("key", f"arrival key has a bad timestamp: {e.reason}") from None
    return ts, ClipKey(date=validate_date(day), store_id=validate_id(store, "store_id"),
                       device_id=validate_id(device, "device_id"), clip_id=validate_id(clip_id, "clip_id"),
                       kind="sidecar", layout=layout)


def status_key(device_id: str, at: datetime) -> str:
    return f"{LANDING_STATUS}/device={validate_id(device_id, 'device_id')}/{timestamp_id(at)}.json"


def corrections_key(batch_id: str) -> str:
    return f"{LANDING_CORRECTIONS}/{validate_id(batch_id, 'batch_id')}.json"


def dataset_prefix(version: str) -> str:
    return f"{DATASETS}/{validate_id(version, 'dataset_version')}"


def model_prefix(model_id: str) -> str:
    return f"{MODELS}/{validate_id(model_id, 'model_id')}"


def release_manifest_key(channel: str) -> str:
    return f"{RELEASES}/{validate_id(channel, 'channel')}/manifest.json"


def release_signature_key(channel: str) -> str:
    return f"{release_manifest_key(channel)}.sig"


def release_metadata_prefix(channel: str) -> str:
    """TUF metadata of a channel: what devices fetch through `tuf.ngclient`."""
    return f"{RELEASES}/{validate_id(channel, 'channel')}/metadata"


def release_targets_prefix(channel: str) -> str:
    """Content-addressed artifacts of a channel (`<dir>/<sha256>.<name>`)."""
    return f"{RELEASES}/{validate_id(channel, 'channel')}/targets"
