"""Versioned documents the model registry writes and reads (cloud-only; what a device reads is
`DeviceModelV1` in edge_agent/contract/schemas.py).

    models/<model_id>/model.json        ModelCardV1
    models/<model_id>/evaluation.json   EvaluationV1
    models/<model_id>/gate.json         GateDecisionV1
    models/production.json              ProductionPointerV1

Like the contract's documents: `schema` + `schema_version` first, then strict validation (unknown
fields are errors). A document that does not validate raises RegistryError naming the lake key and
the field. Parts whose shape belongs to another module (metrics, preprocessing, training curves)
stay JSON objects here; the registry only guarantees they are there.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flywheel.learner.errors import RegistryError

Task = Literal["classify", "detect"]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class FileEntry(_Part):
    key: str  # lake key of the file
    bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class CardLineage(_Part):
    dataset_version: str  # the dataset version it was trained on
    code_version: str  # git sha of the training code (+ "-dirty")
    parent_model: str | None  # production when it was trained
    train_config: dict[str, Any]  # TrainConfig.as_dict()
    dataset_sources: list[str] = []  # lake keys the dataset version was built from


class OnnxValidation(_Part):
    """torch vs ONNX Runtime on the golden inputs (flywheel.learner.onnx_tools.compare_outputs)."""

    passed: bool
    reason: str = ""
    max_abs_diff: float | None = None
    top1_agreement: float | None = None
    n: int = 0  # golden inputs compared
    max_abs_diff_limit: float | None = None  # max_abs_diff x output_scale
    output_scale: float | None = None  # max(1, largest |torch output|); None on cards before it
    min_top1_agreement: float | None = None


class ModelCardV1(_Part):
    """What a registered model is: classes, preprocessing, files with hashes, lineage, training."""

    schema_: Literal["flywheel.model_card"] = Field("flywheel.model_card", alias="schema")
    schema_version: Literal[1] = 1
    model_id: str
    task: Task
    architecture: str  # the ultralytics yaml it was built from
    classes: list[str] = Field(min_length=1)  # output index -> class
    empty_class: str | None  # the "no product" class, if the model has one
    imgsz: int = Field(gt=0)
    preprocessing: dict[str, Any]  # flywheel.learner.preprocess.preprocessing_doc
    files: dict[str, FileEntry]  # weights.pt, model.onnx, golden.npz
    lineage: CardLineage
    training: dict[str, Any]  # epochs, seconds, n_train, n_val, final metrics
    onnx_validation: OnnxValidation
    created_at: datetime


class ModelEvaluation(_Part):
    """One model on the frozen standard sets (flywheel.learner.evaluate)."""

    sets: dict[str, dict[str, Any]]
    slices: dict[str, dict[str, Any]]
    metrics: dict[str, Any]
    latency: dict[str, Any] = {}
    # insertion set -> insertion-level metrics (flywheel.learner.insertion_eval); optional, so
    # evaluations written before insertion sets existed still read
    insertions: dict[str, dict[str, Any]] = {}


class EvaluationV1(_Part):
    """The candidate and production on the same frozen sets with the same code."""

    schema_: Literal["flywheel.evaluation"] = Field("flywheel.evaluation", alias="schema")
    schema_version: Literal[1] = 1
    candidate_id: str
    candidate: ModelEvaluation
    production_id: str | None
    production: ModelEvaluation | None
    test_set_versions: dict[str, str]  # set name -> sha256 of the frozen Parquet
    report_md: str
    gate_sets: list[str] = []  # the sets pooled into the gate's target metric (production_*)
    insertion_set_versions: dict[str, str] = {}  # insertion set name -> sha256 (optional)
    code_version: str | None = None  # registry.code_version() of the evaluating code (optional)
    # production's figures are those its own evaluation recorded (same sets, same clean code), not
    # measured again: pipeline.earlier_evaluation
    production_reused: bool = False


class GateRule(_Part):
    name: str
    passed: bool
    actual: float | None
    threshold: float | None
    detail: str


class GateDecisionV1(_Part):
    """One gate decision over one evaluation (flywheel.learner.gate)."""

    schema_: Literal["flywheel.gate_decision"] = Field("flywheel.gate_decision", alias="schema")
    schema_version: Literal[1] = 1
    candidate_id: str
    production_id: str | None
    passed: bool
    reasons: list[str]
    rules: list[GateRule]


class ProductionPointerV1(_Part):
    """Which model is production; only the release stage moves it (the demo bootstraps the first)."""

    schema_: Literal["flywheel.production"] = Field("flywheel.production", alias="schema")
    schema_version: Literal[1] = 1
    model_id: str
    by: str  # who moved it: "release", "bootstrap", "demo"
    reason: str
    previous: str | None  # the model it replaced
    at: datetime


D = TypeVar("D", bound=_Part)
_LEGACY_SCHEMA = {"flywheel.model/v1": "flywheel.model_card"}  # cards written before versioning


def dump(doc: _Part) -> bytes:
    return json.dumps(doc.model_dump(mode="json", by_alias=True), indent=1, sort_keys=True).encode()


def parse(raw: bytes, expect: type[D], where: str) -> D:
    """Validate one registry document; errors name `where` (the lake key) and the field."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RegistryError(f"{where}: not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"{where}: must be a JSON object, got {type(doc).__name__}")
    kind = expect.model_fields["schema_"].default
    schema = doc.get("schema", kind)  # evaluation/gate/pointer files before versioning carry none
    if _LEGACY_SCHEMA.get(schema) == kind:
        doc = {**doc, "schema": kind, "schema_version": 1}
    elif schema != kind:
        raise RegistryError(f"{where}: field schema: expected {kind!r}, got {schema!r}")
    doc.setdefault("schema", kind)
    doc.setdefault("schema_version", 1)
    try:
        return expect.model_validate(doc)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "document"
        raise RegistryError(f"{where}: field {field}: {re.sub(r'^Value error, ', '', first['msg'])}"
                            ) from None
