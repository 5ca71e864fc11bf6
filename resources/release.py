"""The release signer: the TUF online keys (targets, snapshot, timestamp) a release run signs with.

Local deployment: a key directory on this machine (created with `flywheel release keygen`, or on
first use for a laptop demo). Cluster: one PEM per role from EnvVar secrets; the root key never
reaches a run (channels are created and keys rotated offline with the CLI).
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from flywheel.release.keys import ReleaseKeys


class ReleaseSignerResource(dg.ConfigurableResource):
    """Abstract: `.signers()` returns the signers a release run may use."""

    channel: str = Field(default="stable", description="Release channel these keys sign for.")
    timestamp_expiry_s: float = Field(
        default=24 * 3600.0, description="Timestamp freshness window; the schedule re-signs well "
                                         "before it ends (freeze-attack protection).")

    def signers(self) -> ReleaseKeys:
        raise NotImplementedError

    def expiry(self):
        from flywheel.release.repository import ExpiryConfig

        return ExpiryConfig(timestamp_s=self.timestamp_expiry_s)


class LocalReleaseSigner(ReleaseSignerResource):
    """Keys in a directory; with `create_missing` the first run generates them (laptop demo only:
    the root key then sits next to the online keys)."""

    keys_dir: str = Field(description="Directory holding <role>.pem files.")
    create_missing: bool = Field(default=True, description="Run `keygen` when the directory has "
                                                           "no keys (local deployment only).")

    def signers(self) -> ReleaseKeys:
        from pathlib import Path

        from flywheel.release.keys import keygen, load_keys

        if self.create_missing and not (Path(self.keys_dir) / "targets.pem").exists():
            keygen(self.keys_dir)
        return load_keys(self.keys_dir)


class EnvReleaseSigner(ReleaseSignerResource):
    """Online keys as PEM strings from secrets (EnvVar); no root key."""

    targets_key: str = Field(description="PEM of the targets key (secret).")
    snapshot_key: str = Field(description="PEM of the snapshot key (secret).")
    timestamp_key: str = Field(description="PEM of the timestamp key (secret).")

    def signers(self) -> ReleaseKeys:
        from flywheel.release.keys import signer_from_pem

        return ReleaseKeys({"targets": signer_from_pem(self.targets_key.encode()),
                            "snapshot": signer_from_pem(self.snapshot_key.encode()),
                            "timestamp": signer_from_pem(self.timestamp_key.encode())})
