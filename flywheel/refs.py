"""Typed references that assets pass downstream instead of "latest" pointers in the lake.

A reference names exactly one immutable thing: its id, the lake key of the document that describes
it, and the sha256 of that document's bytes. A downstream step that receives a reference works on
that thing and nothing else, however many runs overlap. They are small JSON values; the Dagster side
keeps them in the lake (resources/lineage.py) so every deployment resolves them the same way.
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, Field

from edge_agent.lake import Lake


class RefMismatch(Exception):
    """The document a reference names changed (or vanished) since the reference was taken."""


class Ref(BaseModel):
    """Base of every reference: frozen, and strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(description="Lake key of the document that describes the referenced thing.")
    sha256: str = Field(description="sha256 of that document's bytes when the reference was taken.")

    @property
    def id(self) -> str:
        raise NotImplementedError

    def read(self, lake: Lake) -> bytes:
        """The referenced document, verified against the hash the reference carries."""
        data = lake.get(self.key)
        actual = hashlib.sha256(data).hexdigest()
        if actual != self.sha256:
            raise RefMismatch(f"{type(self).__name__} {self.id}: {self.key} has sha256 "
                              f"{actual[:16]}, the reference says {self.sha256[:16]}")
        return data


class DatasetRef(Ref):
    """One content-addressed dataset version (datasets/<version>/manifest.json)."""

    version: str = Field(description="The dataset version id (ds-...).")

    @property
    def id(self) -> str:
        return self.version


class ModelRef(Ref):
    """One registered model (models/<model_id>/model.json, its card)."""

    model_id: str = Field(description="The registry id of the model.")

    @property
    def id(self) -> str:
        return self.model_id


class EvaluationRef(Ref):
    """One evaluation of a candidate against production (models/<model_id>/evaluation.json)."""

    model_id: str = Field(description="The candidate that was evaluated.")

    @property
    def id(self) -> str:
        return self.model_id


# every reference type by name, so a stored reference round-trips to its own class
REF_TYPES: dict[str, type[Ref]] = {t.__name__: t for t in (DatasetRef, ModelRef, EvaluationRef)}


def ref_for(lake: Lake, ref_type: type[Ref], key: str, **ids: str) -> Ref:
    """A reference to the document at `key` as it is now."""
    return ref_type(key=key, sha256=hashlib.sha256(lake.get(key)).hexdigest(), **ids)
