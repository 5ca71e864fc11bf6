"""A TUF repository per release channel, kept in the lake and written with `tuf.api.metadata`.

    releases/<channel>/metadata/<N>.root.json     every root version (devices walk them in order)
    releases/<channel>/metadata/root.json         copy of the newest root (to provision devices)
    releases/<channel>/metadata/<N>.targets.json  consistent snapshots: versioned, never replaced
    releases/<channel>/metadata/<N>.snapshot.json
    releases/<channel>/metadata/timestamp.json    the one mutable file, written last
    releases/<channel>/targets/<dir>/<sha256>.<name>   content-addressed artifacts

A publish writes artifacts, then targets, then snapshot (both only-if-absent: two racing publishers
cannot both claim a version), then the timestamp. A reader therefore always sees a timestamp that
names a snapshot that exists, which names targets that exist, whose artifacts exist. Versions only
go up; the timestamp expires soon (config) and `refresh_timestamp` re-signs it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from edge_agent.contract.layout import release_metadata_prefix, release_targets_prefix
from edge_agent.lake import Lake, ObjectExists, ObjectNotFound
from flywheel.release.keys import ONLINE_ROLES, ReleaseKeys

_ROOT_RE = re.compile(r"(\d+)\.root\.json$")


class RepositoryError(Exception):
    """The channel's repository is missing, inconsistent, or a write lost a race."""


@dataclass(frozen=True)
class ExpiryConfig:
    timestamp_s: float = 24 * 3600.0  # freshness window: a frozen mirror is refused after this
    snapshot_s: float = 7 * 24 * 3600.0
    targets_s: float = 90 * 24 * 3600.0
    root_s: float = 365 * 24 * 3600.0


def _expiry(seconds: float) -> datetime:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)


class ChannelRepository:
    """Load, change and publish one channel's TUF metadata. Not thread-safe: one publisher at a
    time per channel (the lake's only-if-absent puts detect a second one and fail it)."""

    def __init__(self, lake: Lake, channel: str, keys: ReleaseKeys,
                 expiry: ExpiryConfig | None = None) -> None:
        self.lake = lake
        self.channel = channel
        self.keys = keys
        self.expiry = expiry or ExpiryConfig()
        self.meta_prefix = release_metadata_prefix(channel)
        self.targets_prefix = release_targets_prefix(channel)
        self.root = self.targets = self.snapshot = self.timestamp = None  # Metadata[...] once loaded

    # -- reading ----------------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.lake.exists(f"{self.meta_prefix}/1.root.json")

    def root_versions(self) -> list[int]:
        found = (_ROOT_RE.search(o.key) for o in self.lake.list(self.meta_prefix))
        return sorted(int(m.group(1)) for m in found if m)

    def load(self) -> ChannelRepository:
        from tuf.api.metadata import Metadata

        versions = self.root_versions()
        if not versions:
            raise RepositoryError(f"channel {self.channel!r} has no TUF repository at "
                                  f"{self.lake.url(self.meta_prefix)}; create it with the root key")
        self.root = Metadata.from_bytes(self.lake.get(f"{self.meta_prefix}/{versions[-1]}.root.json"))
        self.timestamp = Metadata.from_bytes(self.lake.get(f"{self.meta_prefix}/timestamp.json"))
        snap_v = self.timestamp.signed.snapshot_meta.version
        self.snapshot = Metadata.from_bytes(self.lake.get(f"{self.meta_prefix}/{snap_v}.snapshot.json"))
        targets_v = self.snapshot.signed.meta["targets.json"].version
        self.targets = Metadata.from_bytes(self.lake.get(f"{self.meta_prefix}/{targets_v}.targets.json"))
        return self

    def _check_online_keys(self, roles: tuple[str, ...]) -> None:
        """Refuse to sign with a key the current root does not authorise (clear error, no bad
        metadata in the lake)."""
        for role in roles:
            keyid = self.keys.public_key(role).keyid
            if keyid not in self.root.signed.roles[role].keyids:
                raise RepositoryError(f"channel {self.channel!r}: the loaded {role} key {keyid[:12]} is "
                                      f"not the one root v{self.root.signed.version} authorises "
                                      "(rotated? load the current key)")

    # -- creating ---------------------------------------------------------------------------------

    def create(self) -> ChannelRepository:
        """Version 1 of every role. Needs the root key; fails if the channel exists."""
        from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Targets, Timestamp

        if self.exists():
            raise RepositoryError(f"channel {self.channel!r} already exists")
        root = Root(expires=_expiry(self.expiry.root_s), consistent_snapshot=True)
        for role in ("root", *ONLINE_ROLES):
            root.add_key(self.keys.public_key(role), role)
        self.root = Metadata(root)
        self.targets = Metadata(Targets(expires=_expiry(self.expiry.targets_s)))
        self.snapshot = Metadata(Snapshot(expires=_expiry(self.expiry.snapshot_s),
                                          meta={"targets.json": MetaFile(1)}))
        self.timestamp = Metadata(Timestamp(expires=_expiry(self.expiry.timestamp_s),
                                            snapshot_meta=MetaFile(1)))
        self._write_root()
        self._write_versioned(self.targets, "targets")
        self._write_versioned(self.snapshot, "snapshot")
        self._write_timestamp()
        return self

    # -- publishing -------------------------------------------------------------------------------

    def target_key(self, path: str, sha256: str) -> str:
        folder, _, name = path.rpartition("/")
        return f"{self.targets_prefix}/{folder + '/' if folder else ''}{sha256}.{name}"

    def publish(self, files: dict[str, bytes], custom: dict[str, dict] | None = None,
                remove: list[str] | None = None) -> int:
        """Add or replace targets (path -> bytes), drop `remove`, and publish a new consistent
        version. Returns the new targets version."""
        from tuf.api.metadata import TargetFile

        if self.targets is None:
            self.load()
        self._check_online_keys(ONLINE_ROLES)
        for path, data in files.items():
            info = TargetFile.from_data(path, data, ["sha256"])
            if custom and path in custom:
                info.unrecognized_fields["custom"] = custom[path]
            try:  # content-addressed: an existing object already holds exactly these bytes
                self.lake.put(self.target_key(path, info.hashes["sha256"]), data, if_absent=True)
            except ObjectExists:
                pass
            self.targets.signed.targets[path] = info
        for path in remove or []:
            self.targets.signed.targets.pop(path, None)
        self.targets.signed.version += 1
        self.targets.signed.expires = _expiry(self.expiry.targets_s)
        self._write_versioned(self.targets, "targets")
        self._new_snapshot()
        return self.targets.signed.version

    def refresh_timestamp(self) -> int:
        """Re-sign freshness (the schedule calls this well before expiry). Returns its version."""
        if self.timestamp is None:
            self.load()
        self._check_online_keys(("timestamp",))
        self._write_timestamp(bump=True)
        return self.timestamp.signed.version

    def rotate(self, role: str, new_keys: ReleaseKeys) -> int:
        """Replace `role`'s key: a new root version signed by the root key authorises the new key,
        then the role's metadata (and what depends on it) is re-signed with it. Returns the new
        root version. Devices follow the root chain version by version."""
        if self.root is None:
            self.load()
        old_signer = self.keys.signer(role)
        old, new = old_signer.public_key, new_keys.public_key(role)
        root = self.root.signed
        root.revoke_key(old.keyid, role)
        root.add_key(new, role)
        root.version += 1
        root.expires = _expiry(self.expiry.root_s)
        self.keys.signers[role] = new_keys.signer(role)
        # A new root must satisfy the old root's threshold too: sign it with the old root key as well.
        self._write_root(also=old_signer if role == "root" else None)
        if role == "root":
            return root.version
        if role == "targets":
            self.publish({})
        elif role == "snapshot":
            self._new_snapshot()
        else:
            self._write_timestamp(bump=True)
        return root.version

    def _new_snapshot(self) -> None:
        from tuf.api.metadata import MetaFile

        snap = self.snapshot.signed
        snap.meta["targets.json"] = MetaFile(self.targets.signed.version)
        snap.version += 1
        snap.expires = _expiry(self.expiry.snapshot_s)
        self._write_versioned(self.snapshot, "snapshot")
        self.timestamp.signed.snapshot_meta = MetaFile(snap.version)
        self._write_timestamp(bump=True)

    # -- writing ----------------------------------------------------------------------------------

    def _sign(self, md, role: str) -> bytes:
        md.signatures.clear()
        md.sign(self.keys.signer(role))
        return md.to_bytes()

    def _write_root(self, also=None) -> None:
        data = self._sign(self.root, "root")
        if also is not None:
            self.root.sign(also, append=True)
            data = self.root.to_bytes()
        version = self.root.signed.version
        try:
            self.lake.put(f"{self.meta_prefix}/{version}.root.json", data, if_absent=True)
        except ObjectExists:
            raise RepositoryError(f"channel {self.channel!r}: root v{version} was written by someone "
                                  "else meanwhile") from None
        self.lake.put(f"{self.meta_prefix}/root.json", data)

    def _write_versioned(self, md, role: str) -> None:
        data = self._sign(md, role)
        key = f"{self.meta_prefix}/{md.signed.version}.{role}.json"
        try:
            self.lake.put(key, data, if_absent=True)
        except ObjectExists:
            raise RepositoryError(f"{key}: already published by a concurrent release; reload and "
                                  "retry") from None

    def _write_timestamp(self, bump: bool = False) -> None:
        ts = self.timestamp.signed
        if bump:
            ts.version += 1
        ts.expires = _expiry(self.expiry.timestamp_s)
        self.lake.put(f"{self.meta_prefix}/timestamp.json", self._sign(self.timestamp, "timestamp"))


def open_channel(lake: Lake, channel: str, keys: ReleaseKeys, expiry: ExpiryConfig | None = None,
                 *, create: bool = True) -> ChannelRepository:
    """The channel's repository, loaded; created first when missing and `create` (root key needed)."""
    repo = ChannelRepository(lake, channel, keys, expiry)
    try:
        return repo.load()
    except (RepositoryError, ObjectNotFound):
        if not create or repo.exists():
            raise
        return repo.create()
