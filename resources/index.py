"""The search index resource: where the Depot's LanceDB database lives (local directory or S3)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from edge_agent.lake import Lake


class IndexResource(dg.ConfigurableResource):
    """Abstract: a LanceDB location. Assets call `.location(lake)` and never care which backend."""

    vector_index_min_rows: int = Field(
        default=10_000, description="Build the IVF_PQ vector index once the table has this many rows; "
                                    "below it, exact search is fast enough.")

    def location(self, lake: Lake):  # noqa: ANN201 - flywheel.depot.index.IndexLocation
        raise NotImplementedError


class LocalIndexResource(IndexResource):
    """The embedded default: LanceDB in a directory (by default depot/index inside a file lake)."""

    path: str | None = Field(default=None, description="Directory of the LanceDB database; None = "
                                                       "depot/index inside the lake.")

    def location(self, lake: Lake):  # noqa: ANN201
        from flywheel.depot.index import IndexLocation

        return IndexLocation(self.path) if self.path else IndexLocation.for_lake(lake)


class S3IndexResource(IndexResource):
    """LanceDB on S3 (AWS, SeaweedFS, MinIO). Secrets come from EnvVar, never code."""

    uri: str | None = Field(default=None, description="s3://bucket/prefix of the database; None = "
                                                      "depot/index inside the lake.")
    endpoint: str | None = Field(default=None, description="S3 endpoint URL for non-AWS servers.")
    access_key_id: str | None = Field(default=None, description="Access key; None = AWS credential chain.")
    secret_access_key: str | None = Field(default=None, description="Secret key for access_key_id.")
    region: str = Field(default="us-east-1", description="Bucket region.")
    allow_http: bool = Field(default=False, description="Allow plain-http endpoints (SeaweedFS in tests).")

    def location(self, lake: Lake):  # noqa: ANN201
        from flywheel.depot.index import IndexLocation

        if self.uri is None and self.endpoint is None and self.access_key_id is None:
            return IndexLocation.for_lake(lake)
        opts = {"aws_region": self.region}
        if self.endpoint:
            opts["aws_endpoint"] = self.endpoint
        if self.access_key_id:
            opts["aws_access_key_id"] = self.access_key_id
            opts["aws_secret_access_key"] = self.secret_access_key or ""
        if self.allow_http or (self.endpoint or "").startswith("http://"):
            opts["allow_http"] = "true"
        uri = self.uri or lake.url("depot/index")
        return IndexLocation(uri, opts)
