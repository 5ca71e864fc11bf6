"""What is new in the landing zone: the sensor's logic, as a pure function over the lake.

Clip keys (`landing/clips/device=E/date=D/store=S/<sha-prefix>.mp4`, or date first in the
layout-1 keys landed before 2026-12: both are read everywhere) sort by content hash, so a new
clip usually lands BEHIND a start-after cursor over `landing/clips/`: such a cursor alone misses
most uploads. Devices therefore put an empty marker in the arrival log right after each sidecar
(`edge_agent.contract.layout.arrival_key`: keys sorted by upload time). A tick reads two listings,
each strictly after its own cursor, so O(new keys) on both lake backends:

1. the arrival log: every clip a device finished, whatever its clip key (the complete stream);
2. `landing/clips/` after its own cursor: first sight of devices that write no markers, new days
   and devices, stray objects and clips whose sidecar never came (what sorts behind this cursor
   and has no marker is found by the sweep, `plan_sweep`, a rolling pass over every day).

Per clip: both parts there -> ready (its capture day gets an ingest run); a part missing ->
pending, kept in the cursor with the time first seen and re-checked by `head` each tick
(O(pending): uploads in flight; the missing half may sort behind both cursors) until complete,
gone, or past the timeout -> expired: the day still gets a run, whose ingest quarantines it.

A device whose clock runs far ahead would drag the arrival cursor into the future and blind the
sensor, so that cursor never moves past markers stamped later than now + `max_clock_skew_s` (they
are still processed; run keys keep repeats harmless). Keys that cannot be routed to a capture day
(no real calendar date, a marker with an impossible time, a name the lake refuses) are returned as
`unroutable` for quarantine, and a name the lake refuses never becomes a cursor. Ingest is
idempotent per clip id, so a clip reported by both streams, or twice, is still ingested once.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from edge_agent.contract.errors import ContractError
from edge_agent.contract.ids import validate_id
from edge_agent.contract.layout import (
    CLIP_EXT,
    LANDING_ARRIVALS,
    LANDING_CLIPS,
    SIDECAR_EXT,
    day_prefix,
    device_day_prefix,
    parse_arrival_key,
    parse_timestamp_id,
    validate_date,
)
from edge_agent.lake import Lake, ObjectInfo
from flywheel.depot import quarantine as q
from flywheel.depot.config import DepotConfig

# layout 2 (device first) or layout 1 (date first)
_DAY_RE = re.compile(r"landing/clips/(?:device=([^/]+)/)?date=([0-9]{4}-[0-9]{2}-[0-9]{2})/")
_ANY_DAY_RE = re.compile(r"landing/clips/(?:device=[^/]+/)?date=([^/]*)/")
PARTS = (CLIP_EXT, SIDECAR_EXT)


@dataclass
class LandingCursor:
    after: str | None = None  # last arrival-log key consumed
    clips_after: str | None = None  # last landing/clips key listed
    pending: dict[str, float] = field(default_factory=dict)  # clip stem -> first seen (unix seconds)

    def to_json(self) -> str:
        return json.dumps({"after": self.after, "clips_after": self.clips_after,
                           "pending": dict(sorted(self.pending.items()))}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> LandingCursor:
        if not text:
            return cls()
        doc = json.loads(text)
        return cls(after=doc.get("after"), clips_after=doc.get("clips_after"),
                   pending={k: float(v) for k, v in doc.get("pending", {}).items()})


@dataclass
class LandingScan:
    cursor: LandingCursor
    ready: dict[str, list[str]] = field(default_factory=dict)  # day -> clip stems now complete
    expired: dict[str, list[str]] = field(default_factory=dict)  # day -> stems past the timeout
    unroutable: list[str] = field(default_factory=list)  # arrival keys that do not parse
    listed: int = 0  # keys read by the listing (the O(new) part)
    checked: int = 0  # pending stems re-checked by head

    @property
    def days(self) -> list[str]:
        return sorted(set(self.ready) | set(self.expired))

    def run_key(self, day: str) -> str:
        """Same work -> same key: a re-evaluated tick (restart from an old cursor) is deduplicated."""
        stems = sorted(self.ready.get(day, [])) + ["expired:" + s for s in sorted(self.expired.get(day, []))]
        digest = hashlib.sha256("\n".join(stems).encode()).hexdigest()[:20]
        return f"depot-ingest:{day}:{digest}"


def split_key(key: str) -> tuple[str, str]:
    """(stem, extension) of a landing key; other extensions give ("key", "")."""
    for ext in PARTS:
        if key.endswith(ext):
            return key[: -len(ext)], ext
    return key, ""


def day_of(key: str) -> str | None:
    """The capture day of a landing clips key, only when it is a real calendar date."""
    m = _DAY_RE.match(key)
    if not m:
        return None
    try:
        if m.group(1) is not None:
            validate_id(m.group(1), "device_id")  # a device folder no prefix rule could own
        return validate_date(m.group(2))
    except ContractError:
        return None


def why_unroutable(key: str) -> tuple[str, str]:
    """(reason code, words) for a landing key no capture day can take."""
    if not q.addressable(key):
        return q.BAD_KEY, f"the lake refuses the name {key!r}"
    m = _ANY_DAY_RE.match(key)
    if m and day_of(key) is None:
        try:
            validate_date(m.group(1))
        except ContractError:
            return q.BAD_DATE, f"date={m.group(1)!r} is not a calendar date YYYY-MM-DD"
        return q.BAD_KEY, "the device folder is not a valid device id"
    if key.startswith(LANDING_ARRIVALS + "/"):
        try:
            parse_arrival_key(key)
        except ContractError as e:
            return q.BAD_KEY, f"not a valid arrival marker key: {e.reason}"
    return q.BAD_KEY, "not under landing/clips/device=D/date=YYYY-MM-DD/ (nor layout 1's date=YYYY-MM-DD/)"


def day_objects(lake: Lake, day: str) -> Iterator[ObjectInfo]:
    """Every landed object of a capture day, both layouts: the day's folder of layout 1, then the
    day's folder under each device (one delimiter listing finds the devices: O(devices))."""
    yield from lake.list(day_prefix(day))
    for folder in lake.list_folders(LANDING_CLIPS):
        if folder.startswith("device="):
            try:
                prefix = device_day_prefix(folder.removeprefix("device="), day)
            except ContractError:  # a bad device id: listed all the same, so the ingest quarantines it
                prefix = f"{LANDING_CLIPS}/{folder}/date={validate_date(day)}"
                if not q.addressable(prefix):
                    continue  # the lake refuses the name: the sensor and sweep quarantine it
            yield from lake.list(prefix)


def scan_landing(lake: Lake, cursor: LandingCursor, *, now: float, config: DepotConfig | None = None
                 ) -> LandingScan:
    """One sensor tick's decisions and the next cursor. Each stream reads at most
    `config.max_keys_per_tick` new keys (a backlog drains over several ticks)."""
    config = config or DepotConfig()
    pending = dict(cursor.pending)
    scan = LandingScan(cursor=LandingCursor(after=cursor.after, clips_after=cursor.clips_after,
                                            pending=pending))
    # 1. the arrival log: every clip a device finished uploading, in upload order
    marked: dict[str, str] = {}  # stem -> day
    frozen = False  # once a marker is from the future, the cursor stays put (keys are time-ordered)
    for info in lake.list(LANDING_ARRIVALS, start_after=cursor.after, limit=config.max_keys_per_tick):
        scan.listed += 1
        try:
            ts, ck = parse_arrival_key(info.key)
        except ContractError:
            scan.unroutable.append(info.key)
            ts, ck = None, None
        if ts is not None and parse_timestamp_id(ts).timestamp() > now + config.max_clock_skew_s:
            frozen = True
        if not frozen and q.addressable(info.key):  # the lake refuses a bad name as a cursor
            scan.cursor.after = info.key
        if ck is not None:
            marked[ck.sidecar_key[: -len(SIDECAR_EXT)]] = ck.date
    # 2. the clip keys past their own cursor: first sight of agents that write no markers, new
    #    days and devices, and stray objects (the sweep covers what sorts behind it)
    listed: dict[str, set[str]] = {}
    for info in lake.list(LANDING_CLIPS, start_after=cursor.clips_after, limit=config.max_keys_per_tick):
        scan.listed += 1
        if not q.addressable(info.key):
            scan.unroutable.append(info.key)  # nothing can head or read it: quarantine it now
            continue
        scan.cursor.clips_after = info.key
        stem, ext = split_key(info.key)
        if day_of(stem) is None:
            scan.unroutable.append(info.key)
        else:
            listed.setdefault(stem, set()).add(ext)
    fresh: set[str] = set()
    for stem in sorted(set(marked) | set(listed)):
        if stem in pending:
            continue  # re-checked below
        day = marked.get(stem) or day_of(stem) or ""
        exts = listed.get(stem, set())
        if "" in exts or set(PARTS) <= exts:  # junk (the ingest quarantines it) or seen complete
            scan.ready.setdefault(day, []).append(stem)
            continue
        scan.checked += 1
        if all(lake.exists(stem + ext) for ext in PARTS):
            scan.ready.setdefault(day, []).append(stem)
        else:
            pending[stem] = now
            fresh.add(stem)
    # 3. clips pending from earlier ticks: their missing half may have landed behind the cursors
    for stem, first_seen in list(pending.items()):
        if stem in fresh:
            continue
        scan.checked += 1
        present = [lake.exists(stem + ext) for ext in PARTS]
        day = day_of(stem) or ""
        if all(present):
            scan.ready.setdefault(day, []).append(stem)
            del pending[stem]
        elif not any(present):  # gone (quarantined or deleted): nothing to wait for
            del pending[stem]
        elif now - first_seen >= config.pending_timeout_s:
            scan.expired.setdefault(day, []).append(stem)
            del pending[stem]
    return scan


# -- the sweep: a slow full pass over landing/clips/ that nothing can hide from ----------------


@dataclass
class SweepCursor:
    after: str | None = None  # last landing/clips key of the pass in progress
    covered: dict[str, float] = field(default_factory=dict)  # day -> watermark (unix seconds)
    passes: int = 0  # full passes completed

    def to_json(self) -> str:
        return json.dumps({"after": self.after, "covered": dict(sorted(self.covered.items())),
                           "passes": self.passes}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> SweepCursor:
        try:
            doc = json.loads(text) if text else {}
        except ValueError:
            doc = {}  # a cursor of the old hourly sweep: start a fresh pass
        if not isinstance(doc, dict):
            doc = {}
        return cls(after=doc.get("after"), covered={k: float(v) for k, v in doc.get("covered", {}).items()},
                   passes=int(doc.get("passes", 0)))


@dataclass
class SweepPlan:
    cursor: SweepCursor
    days: dict[str, str] = field(default_factory=dict)  # day -> run key
    unroutable: list[str] = field(default_factory=list)
    listed: int = 0


def plan_sweep(listing: Iterable[ObjectInfo], cursor: SweepCursor, *, now: float, limit: int,
               settle_s: float) -> SweepPlan:
    """One sweep tick over at most `limit` keys of landing/clips/ (the caller lists after
    `cursor.after`), whatever their day or however late they landed.

    Per day a watermark says: a run was requested after every object modified up to it had
    existed for `settle_s` (the pending timeout), so that run decided it (ingested or quarantined).
    An object above its day's watermark, such as a clip of last week whose marker sorted behind
    the arrival cursor, gets its day a run; objects younger than `settle_s` stay above the new
    watermark and are seen again on the next pass. A short listing ends the pass: the next tick
    starts over from the beginning, so a pass costs (keys / limit) ticks and each tick `limit` keys.
    """
    plan = SweepPlan(cursor=SweepCursor(after=cursor.after, covered=dict(cursor.covered),
                                        passes=cursor.passes))
    newest: dict[str, float] = {}
    for info in listing:
        plan.listed += 1
        if q.addressable(info.key):
            plan.cursor.after = info.key
        day = day_of(info.key) if q.addressable(info.key) else None
        if day is None:
            plan.unroutable.append(info.key)
        else:
            modified = info.last_modified.timestamp()
            if modified > plan.cursor.covered.get(day, float("-inf")):
                newest[day] = max(newest.get(day, modified), modified)
        if plan.listed >= limit:
            break
    if plan.listed < limit:  # the end of landing/clips/: next tick begins a new pass
        plan.cursor.after = None
        plan.cursor.passes += 1
    for day, modified in sorted(newest.items()):
        mark = min(modified, now - settle_s)
        plan.cursor.covered[day] = max(plan.cursor.covered.get(day, float("-inf")), mark)
        plan.days[day] = f"depot-sweep:{day}:{modified:.6f}:{mark:.0f}"
    return plan
