"""The frame encoder resource: which model turns frames into search vectors."""

from __future__ import annotations

from typing import Any, Literal

import dagster as dg
from pydantic import Field

from edge_agent.lake import Lake


class EncoderResource(dg.ConfigurableResource):
    """Chooses the Depot's frame encoder (see flywheel/depot/embed.py for the kinds).

    `auto`: the production model's penultimate layer when the registry has one, else the
    deterministic descriptor. `hf_clip`: a transformers CLIP checkpoint (enables text search).
    """

    kind: Literal["auto", "descriptor", "production_model", "hf_clip"] = Field(
        default="auto", description="Encoder kind; auto = production model if any, else descriptor.")
    hf_path: str | None = Field(default=None, description="Local path (or hub id) of a CLIP checkpoint "
                                                          "for kind hf_clip.")

    def spec(self, lake: Lake) -> dict[str, Any]:
        from flywheel.depot.embed import resolve_spec

        return resolve_spec(lake, self.kind, self.hf_path)

    def encoder(self, lake: Lake):  # noqa: ANN201 - flywheel.depot.embed.FrameEncoder
        from flywheel.depot.embed import load_encoder

        return load_encoder(self.spec(lake), lake)
