"""The lake resource: where every asset reads and writes (a local directory or S3)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from edge_agent.lake import Lake, S3Options


class LakeResource(dg.ConfigurableResource):
    """Abstract: a handle on the lake. Assets call `.lake()` and never care which backend it is."""

    def lake(self) -> Lake:
        raise NotImplementedError


class LocalLakeResource(LakeResource):
    """The embedded default: a directory on this machine (`file://`)."""

    root: str = Field(description="Directory that holds the lake; created when missing.")

    def lake(self) -> Lake:
        Path(self.root).mkdir(parents=True, exist_ok=True)
        return Lake.at_path(self.root)


class S3LakeResource(LakeResource):
    """A lake in an S3 bucket (AWS, SeaweedFS, MinIO). Secrets come from EnvVar, never code."""

    uri: str = Field(description="s3://bucket/prefix of the lake root.")
    endpoint: str | None = Field(
        default=None, description="S3 endpoint URL for non-AWS servers; None for AWS.")
    access_key_id: str | None = Field(
        default=None, description="Access key; None to use the AWS credential chain.")
    secret_access_key: str | None = Field(default=None, description="Secret key for access_key_id.")
    region: str = Field(default="us-east-1", description="Bucket region.")

    def lake(self) -> Lake:
        return Lake(self.uri, s3=S3Options(endpoint=self.endpoint, access_key_id=self.access_key_id,
                                           secret_access_key=self.secret_access_key,
                                           region=self.region))
