"""The Label Studio resource: the annotation server humans review in (`make labelstudio` starts one)."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field


class LabelStudioResource(dg.ConfigurableResource):
    """A Label Studio server reached through `label-studio-sdk`. The token comes from an EnvVar
    (LABEL_STUDIO_API_KEY), never code: a legacy token or a personal access token both work."""

    url: str = Field(default="http://127.0.0.1:8080",
                     description="Base URL of the Label Studio server, without a trailing slash.")
    api_key: str = Field(description="API token of the account that owns the review projects.")
    timeout_s: float = Field(default=30.0, description="Seconds before one API call counts as failed.")

    def client(self) -> Any:
        from flywheel.label.studio import connect

        return connect(self.url, self.api_key, self.timeout_s)
