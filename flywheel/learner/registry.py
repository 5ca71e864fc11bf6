"""The model registry in the lake.

    models/<model_id>/weights.pt            ultralytics checkpoint + `flywheel` meta (config, dataset)
    models/<model_id>/model.onnx            what devices run (ONNX Runtime, NCHW float32)
    models/<model_id>/detector.onnx + .pt   two-stage models only: the item detector (two_stage.py)
    models/<model_id>/golden.npz            golden inputs + expected outputs (device self-test;
                                            two-stage: detector_inputs/detector_expected too)
    models/<model_id>/training_curves.json  per-epoch metrics for plots (data, not a document)
    models/<model_id>/model.json            ModelCardV1: classes, preprocessing, files, lineage, training
    models/<model_id>/device.json           DeviceModelV1: a device slot's model.json
    models/<model_id>/evaluation.json       EvaluationV1: metrics on the frozen standard sets (+ report.md)
    models/<model_id>/gate.json             GateDecisionV1: the last gate decision
    models/production.json                  ProductionPointerV1; only the release stage moves it

Every file of an entry is written before the card, and the card before anything points at it. The
documents are versioned pydantic models (flywheel/learner/documents.py, and the device's in the
edge contract); this module reads and writes only those, and a malformed one is a RegistryError that
names the lake key and the field.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from edge_agent.contract.errors import ContractError
from edge_agent.contract.layout import MODELS, model_prefix
from edge_agent.contract.schemas import DeviceModelV1, dump_document, parse_device_model
from edge_agent.lake import Lake, ObjectExists, ObjectNotFound
from flywheel.learner.documents import (
    D,
    EvaluationV1,
    GateDecisionV1,
    ModelCardV1,
    ProductionPointerV1,
    dump,
    parse,
)
from flywheel.learner.errors import RegistryError

DETECTOR_FILE = "detector.onnx"  # two-stage models: the item detector the device runs
DETECTOR_WEIGHTS = "detector.pt"
PRODUCTION_KEY = f"{MODELS}/production.json"


def code_version() -> str:
    """git sha of the code that trained (with -dirty when the tree has local changes)."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def new_model_id(task: str, dataset_version: str, config: dict, at: datetime | None = None) -> str:
    """Sortable by time, and names its inputs: cls-20261125T101500-<hash of dataset + config>."""
    at = at or datetime.now(UTC)
    digest = hashlib.sha256(json.dumps([dataset_version, config], sort_keys=True).encode()).hexdigest()
    short = {"classify": "cls", "detect": "det"}.get(task, task)
    return f"{short}-{at.strftime('%Y%m%dT%H%M%S')}-{digest[:8]}"


def key(model_id: str, name: str) -> str:
    return f"{model_prefix(model_id)}/{name}"


def write_training_curves(lake: Lake, model_id: str, curves: list[dict]) -> None:
    """Per-epoch metric rows for plots (ultralytics' results.csv): data, not a registry document."""
    lake.put(key(model_id, "training_curves.json"),
             json.dumps(curves, indent=1, sort_keys=True, default=str).encode())


def put_file(lake: Lake, model_id: str, name: str, path: Path) -> dict:
    data = Path(path).read_bytes()
    lake.put(key(model_id, name), data)
    return {"key": key(model_id, name), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _read(lake: Lake, k: str, doc_type: type[D]) -> D:
    return parse(lake.get(k), doc_type, k)  # ObjectNotFound propagates: callers say what it means


def write_card(lake: Lake, card: ModelCardV1) -> None:
    lake.put(key(card.model_id, "model.json"), dump(card))


def read_card(lake: Lake, model_id: str) -> ModelCardV1:
    try:
        return _read(lake, key(model_id, "model.json"), ModelCardV1)
    except ObjectNotFound:
        raise RegistryError(f"model {model_id} is not in the registry at {lake.uri}") from None


def write_device_model(lake: Lake, doc: DeviceModelV1) -> None:
    lake.put(key(doc.model_version, "device.json"), dump_document(doc))


def read_device_model(lake: Lake, model_id: str) -> DeviceModelV1:
    k = key(model_id, "device.json")
    try:
        return parse_device_model(lake.get(k))
    except ContractError as e:
        raise RegistryError(f"{k}: field {e.field}: {e.reason}") from None


def write_evaluation(lake: Lake, evaluation: EvaluationV1) -> None:
    lake.put(key(evaluation.candidate_id, "evaluation.json"), dump(evaluation))


def read_evaluation(lake: Lake, model_id: str) -> EvaluationV1:
    return _read(lake, key(model_id, "evaluation.json"), EvaluationV1)


def write_gate(lake: Lake, decision: GateDecisionV1) -> None:
    lake.put(key(decision.candidate_id, "gate.json"), dump(decision))


def read_gate(lake: Lake, model_id: str) -> GateDecisionV1:
    return _read(lake, key(model_id, "gate.json"), GateDecisionV1)


def fetch_file(lake: Lake, model_id: str, name: str, dest_dir: Path) -> Path:
    """Download one registry file, verifying the sha256 recorded in the card."""
    card = read_card(lake, model_id)
    entry = card.files.get(name)
    data = lake.get(key(model_id, name))
    if entry and hashlib.sha256(data).hexdigest() != entry.sha256:
        raise RegistryError(f"model {model_id}: {name} does not match the sha256 in its card")
    dest_dir.mkdir(parents=True, exist_ok=True)
    out = dest_dir / f"{model_id}-{name}"
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    return out


def write_slot(lake: Lake, model_id: str, slot: Path) -> Path:
    """A device model directory for `model_id`: model.onnx (sha256 from the card), model.json (the
    device card) and, for a two-stage model, the detector it names: what the release ships to a
    slot, for the fleet simulator, the teacher labeler and evaluation's device runtime."""
    slot = Path(slot)
    doc = read_device_model(lake, model_id)
    for name in ("model.onnx", *([doc.detector.file] if doc.detector else [])):
        fetch_file(lake, model_id, name, slot).replace(slot / name)  # sha256-checked
    (slot / "model.json").write_bytes(dump_document(doc))
    return slot


# -- the production pointer -------------------------------------------------------------------------

def read_production(lake: Lake) -> ProductionPointerV1 | None:
    try:
        return _read(lake, PRODUCTION_KEY, ProductionPointerV1)
    except ObjectNotFound:
        return None


def production_model_id(lake: Lake) -> str | None:
    pointer = read_production(lake)
    return pointer.model_id if pointer else None


def _pointer(model_id: str, by: str, reason: str, previous: str | None) -> ProductionPointerV1:
    return ProductionPointerV1(model_id=model_id, by=by, reason=reason, previous=previous,
                               at=datetime.now(UTC))


def _require_passed_gate(lake: Lake, model_id: str) -> GateDecisionV1:
    read_card(lake, model_id)
    try:
        gate = read_gate(lake, model_id)
    except ObjectNotFound:
        raise RegistryError(f"model {model_id} has no gate decision; run the evaluation gate first"
                            ) from None
    if not gate.passed:
        raise RegistryError(f"model {model_id} failed its gate: {'; '.join(gate.reasons)}")
    return gate


def set_production(lake: Lake, model_id: str, *, by: str, reason: str) -> ProductionPointerV1:
    """Move the production pointer (the release stage calls this after re-checking the gate)."""
    _require_passed_gate(lake, model_id)
    pointer = _pointer(model_id, by, reason, production_model_id(lake))
    lake.put(PRODUCTION_KEY, dump(pointer))
    return pointer


def bootstrap_production(lake: Lake, model_id: str, *, by: str = "bootstrap"
                         ) -> ProductionPointerV1 | None:
    """The first model becomes production when there is none (conditional create: of two racing
    bootstraps only one wins). Returns the pointer, or None when production already existed."""
    _require_passed_gate(lake, model_id)
    pointer = _pointer(model_id, by, "bootstrap: no production model existed", None)
    try:
        lake.put(PRODUCTION_KEY, dump(pointer), if_absent=True)
    except ObjectExists:
        return None
    return pointer
