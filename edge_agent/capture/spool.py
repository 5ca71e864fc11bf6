"""The local spool: finished clips waiting for upload, under a hard byte cap.

    <spool>/tmp/     partial writes (encoder output, sidecar temp files); wiped on start
    <spool>/ready/<created_ns>-<clip_id>.mp4   the clip
    <spool>/ready/<created_ns>-<clip_id>.json  its sidecar, written LAST (tmp + fsync + rename):
                                               an entry exists only once its sidecar does

After a crash, `scan()` deletes temp files and clips without a sidecar, checks every remaining
clip's size and sha256 against its sidecar, and resumes: nothing half-written is ever uploaded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_agent.contract import ContractError, parse_sidecar
from edge_agent.contract.layout import clip_key, sidecar_key

log = logging.getLogger(__name__)

POLICIES = ("oldest_first", "pause")  # at the cap: evict the oldest spooled clips, or refuse new ones


@dataclass
class SpoolEntry:
    name: str  # "<created_ns>-<clip_id>"
    clip_id: str
    created_ns: int
    priority: int
    size: int  # clip + sidecar bytes on disk
    clip_size: int
    sha256: str
    clip_key: str
    sidecar_key: str
    clip_path: Path
    sidecar_path: Path
    in_flight: bool = False

    @property
    def order(self) -> tuple[int, int]:
        return (self.priority, self.created_ns)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, tmp_dir: Path | None = None) -> None:
    """Write via a temp file in the same filesystem, fsync, rename, fsync the directory."""
    tmp = (tmp_dir or path.parent) / f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Spool:
    def __init__(self, root: str | Path, *, cap_bytes: int, min_free_bytes: int = 0,
                 policy: str = "oldest_first",
                 disk_free: Callable[[Path], int] | None = None) -> None:
        if cap_bytes <= 0:
            raise ValueError(f"spool cap must be positive, got {cap_bytes}")
        if policy not in POLICIES:
            raise ValueError(f"spool policy must be one of {POLICIES}, got {policy!r}")
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.ready = self.root / "ready"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.ready.mkdir(parents=True, exist_ok=True)
        self.cap_bytes, self.min_free_bytes, self.policy = cap_bytes, min_free_bytes, policy
        self._disk_free = disk_free or (lambda p: shutil.disk_usage(p).free)
        self._lock = threading.Lock()
        self._entries: dict[str, SpoolEntry] = {}
        self.discarded: dict[str, int] = {}  # cause -> files removed by scan (partial, corrupt)
        self.changed = threading.Condition(self._lock)

    # -- state ------------------------------------------------------------------------------------

    @property
    def used_bytes(self) -> int:
        with self._lock:
            return sum(e.size for e in self._entries.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def entries(self) -> list[SpoolEntry]:
        with self._lock:
            return sorted(self._entries.values(), key=lambda e: e.order)

    def wait_empty(self, timeout: float) -> bool:
        """Block until every entry has been uploaded or dropped (or timeout); True when empty."""
        with self.changed:
            return self.changed.wait_for(lambda: not self._entries, timeout)

    def disk_low(self) -> bool:
        return self.min_free_bytes > 0 and self._disk_free(self.root) < self.min_free_bytes

    def tmp_path(self, name: str) -> Path:
        return self.tmp / name

    # -- recovery ---------------------------------------------------------------------------------

    def scan(self) -> int:
        """Recover after a restart; returns the number of entries ready for upload."""
        for p in self.tmp.iterdir():
            self._discard(p, "partial_tmp")
        sidecars = {p.stem: p for p in self.ready.glob("*.json")}
        for p in self.ready.iterdir():
            if p.name.startswith("."):
                self._discard(p, "partial_tmp")
            elif p.suffix == ".mp4" and p.stem not in sidecars:
                self._discard(p, "clip_without_sidecar")  # crashed between clip and sidecar
        for stem, side in sorted(sidecars.items()):
            clip = self.ready / f"{stem}.mp4"
            try:
                entry = self._load(stem, side, clip)
            except (ContractError, ValueError, OSError) as e:
                log.warning("spool: discarding %s: %s", stem, e)
                self._discard(side, "corrupt")
                self._discard(clip, "corrupt")
                continue
            with self._lock:
                self._entries[stem] = entry
        return len(self)

    def _load(self, stem: str, side: Path, clip: Path) -> SpoolEntry:
        sc = parse_sidecar(side.read_bytes())
        if not clip.exists():
            raise ValueError("sidecar without clip")
        size = clip.stat().st_size
        if size != sc.clip.size_bytes or sha256_file(clip) != sc.clip.sha256:
            raise ValueError("clip bytes do not match the sidecar's size/sha256")
        created_ns = int(stem.split("-", 1)[0])
        return self._entry(stem, created_ns, sc, clip, side)

    def _entry(self, stem: str, created_ns: int, sc, clip: Path, side: Path) -> SpoolEntry:
        return SpoolEntry(
            name=stem, clip_id=sc.clip_id, created_ns=created_ns, priority=sc.priority,
            size=sc.clip.size_bytes + side.stat().st_size, clip_size=sc.clip.size_bytes,
            sha256=sc.clip.sha256,
            clip_key=clip_key(sc.capture_date, sc.store_id, sc.device_id, sc.clip_id),
            sidecar_key=sidecar_key(sc.capture_date, sc.store_id, sc.device_id, sc.clip_id),
            clip_path=clip, sidecar_path=side)

    def _discard(self, p: Path, cause: str) -> None:
        try:
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
        except FileNotFoundError:
            return
        self.discarded[cause] = self.discarded.get(cause, 0) + 1

    # -- admission and commit ---------------------------------------------------------------------

    def make_room(self, size: int) -> tuple[bool, list[SpoolEntry]]:
        """Decide whether a new entry of `size` bytes fits; with oldest_first, evict to make it fit.

        Returns (admitted, evicted entries). In-flight entries are never evicted.
        """
        with self._lock:
            if size > self.cap_bytes:
                return False, []
            used = sum(e.size for e in self._entries.values())
            if used + size <= self.cap_bytes:
                return True, []
            if self.policy == "pause":
                return False, []
            evicted = []
            for e in sorted(self._entries.values(), key=lambda e: e.created_ns):
                if used + size <= self.cap_bytes:
                    break
                if e.in_flight:
                    continue
                del self._entries[e.name]
                used -= e.size
                evicted.append(e)
            if evicted:
                self.changed.notify_all()  # wakes wait_empty()
            for e in evicted:
                _unlink_entry(e)
            if used + size > self.cap_bytes:
                return False, evicted
            return True, evicted

    def commit(self, tmp_clip: Path, sidecar_bytes: bytes, created_ns: int) -> SpoolEntry:
        """Move an encoded clip in and write its sidecar last; the entry is visible only after."""
        sc = parse_sidecar(sidecar_bytes)
        stem = f"{created_ns:020d}-{sc.clip_id}"
        clip = self.ready / f"{stem}.mp4"
        side = self.ready / f"{stem}.json"
        os.replace(tmp_clip, clip)
        fsync_dir(self.ready)
        atomic_write(side, sidecar_bytes, self.tmp)
        entry = self._entry(stem, created_ns, sc, clip, side)
        with self.changed:
            self._entries[stem] = entry
            self.changed.notify_all()
        return entry

    # -- upload side ------------------------------------------------------------------------------

    def checkout(self, skip: set[str] | None = None) -> SpoolEntry | None:
        """The next entry to upload (priority, then oldest), marked in flight."""
        with self._lock:
            for e in sorted(self._entries.values(), key=lambda e: e.order):
                if not e.in_flight and (skip is None or e.name not in skip):
                    e.in_flight = True
                    return e
        return None

    def release(self, entry: SpoolEntry) -> None:
        with self._lock:
            entry.in_flight = False

    def remove(self, entry: SpoolEntry) -> None:
        """Delete an uploaded entry: sidecar first, so a crash in between leaves an orphan clip
        that scan() discards, never a sidecar that claims a missing clip."""
        with self.changed:
            self._entries.pop(entry.name, None)
            self.changed.notify_all()
        _unlink_entry(entry)


def _unlink_entry(e: SpoolEntry) -> None:
    for p in (e.sidecar_path, e.clip_path):
        try:
            p.unlink()
        except FileNotFoundError:
            pass
