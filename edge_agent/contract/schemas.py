"""Versioned document schemas of the edge-cloud contract.

Every document carries `schema` (its kind) and `schema_version`. Parsing checks both before
anything else, so an unknown version is reported as such rather than as a pile of field errors;
then pydantic validates strictly (unknown fields are errors: nothing is silently dropped) and the
first problem is raised as a ContractError naming the field path.

Bump a version by adding a new model class and registering it in `_REGISTRY`; readers keep
accepting the versions they list.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from edge_agent.contract.errors import ContractError
from edge_agent.contract.ids import validate_id, validate_key


def _reason_only(check: Any) -> Any:
    # pydantic already names the field; keep just the reason from the path-safety check.
    def run(value: str) -> str:
        try:
            return check(value)
        except ContractError as e:
            raise ValueError(e.reason) from None

    return run


SafeId = Annotated[str, AfterValidator(_reason_only(validate_id))]
Key = Annotated[str, AfterValidator(_reason_only(validate_key))]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]
NonNeg = Annotated[int, Field(ge=0)]
# x1, y1, x2, y2 in pixels: never negative (a tool's box past the left/top edge is a bad export;
# past the right/bottom the crop clamps: the frame's size is not in the batch)
Box = Annotated[list[Annotated[float, Field(ge=0.0)]], Field(min_length=4, max_length=4)]
Ean13 = Annotated[str, Field(pattern=r"^\d{13}$")]


def _utc(v: datetime) -> datetime:
    if v.tzinfo is None:
        raise ValueError("must carry a timezone (UTC)")
    return v


UtcTime = Annotated[datetime, AfterValidator(_utc)]


class _Doc(BaseModel):
    # NaN and Infinity (which json.loads accepts) are refused wherever a float is
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False,
                              allow_inf_nan=False)


# -- clip sidecar ------------------------------------------------------------------------------


class ClipInfo(_Doc):
    sha256: Sha256  # of the .mp4 bytes; the clip id is its first 32 hex chars
    size_bytes: NonNeg
    codec: Literal["h264"]
    width: Annotated[int, Field(gt=0, le=8192)]
    height: Annotated[int, Field(gt=0, le=8192)]
    fps: Annotated[float, Field(gt=0, le=240)]
    frame_count: Annotated[int, Field(gt=0)]
    duration_s: Annotated[float, Field(gt=0)]


class TriggerFiring(_Doc):
    rule: str = Field(min_length=1, max_length=200)  # rule expression or name, e.g. "all(motion,barcode)"
    frame: NonNeg  # clip frame index where it fired
    value: float | str | bool | None = None  # the signal value that made it fire
    signals: dict[str, float | str | bool | None] = {}  # every signal's value at that frame


class BarcodeRead(_Doc):
    frame: NonNeg
    format: str = Field(min_length=1, max_length=32)  # e.g. "EAN13"
    text: str = Field(min_length=1, max_length=64)


class WeightSample(_Doc):
    t: Annotated[float, Field(ge=0)]  # seconds since clip start
    grams: float


class LocationSample(_Doc):
    t: Annotated[float, Field(ge=0)]
    aisle: str = Field(min_length=1, max_length=64)
    x_m: float  # position along the aisle, metres


class FramePrediction(_Doc):
    index: NonNeg
    t: Annotated[float, Field(ge=0)]  # seconds since clip start (the frame timestamp)
    prediction: str | None  # the device model's top-1 label (SKU EAN) or None for "nothing"
    confidence: Unit


class ClipSidecarV1(_Doc):
    schema_: Literal["flywheel.clip_sidecar"] = Field("flywheel.clip_sidecar", alias="schema")
    schema_version: Literal[1] = 1
    clip_id: SafeId
    device_id: SafeId
    store_id: SafeId
    capture_date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")  # the landing partition
    started_at: UtcTime
    model_version: SafeId
    rule_set_version: str = Field(min_length=1, max_length=64)
    agent_version: str = Field(min_length=1, max_length=64)
    priority: Annotated[int, Field(ge=0, le=9)] = 5  # 0 = upload first
    clip: ClipInfo
    triggers: list[TriggerFiring] = Field(min_length=1)  # why this moment was captured
    barcode_reads: list[BarcodeRead] = []
    weight_series: list[WeightSample] = []
    location_series: list[LocationSample] = []
    frames: list[FramePrediction] = Field(min_length=1)

    model_config = ConfigDict(populate_by_name=True)

    @model_validator(mode="after")
    def _consistent(self) -> ClipSidecarV1:
        if self.clip_id != self.clip.sha256[: len(self.clip_id)] or len(self.clip_id) != 32:
            raise ValueError("clip_id must be the first 32 hex characters of clip.sha256")
        if len(self.frames) != self.clip.frame_count:
            raise ValueError(f"frames has {len(self.frames)} entries, clip.frame_count is "
                             f"{self.clip.frame_count}")
        indices = [f.index for f in self.frames]
        if indices != list(range(len(indices))):
            raise ValueError("frames must be indexed 0..frame_count-1 in order")
        times = [f.t for f in self.frames]
        if any(b < a for a, b in zip(times, times[1:], strict=False)):
            raise ValueError("frame timestamps must not decrease")
        for name, items in (("triggers", self.triggers), ("barcode_reads", self.barcode_reads)):
            for i, item in enumerate(items):
                if item.frame >= self.clip.frame_count:
                    raise ValueError(f"{name}.{i}.frame {item.frame} is past the clip's last frame")
        return self


class InsertionSummary(_Doc):
    """One insertion the device decided (edge_agent/insertion.py): the item the cart got."""

    first_frame: NonNeg  # clip frame index of its first frame (0 when it began before the clip)
    last_frame: NonNeg  # ... of the frame that closed it
    began_before_clip: bool = False  # its first frames fell before the clip's pre-roll
    # the clip ended while it was open: label/confidence are the decision over its frames so far
    # and last_frame is the clip's last frame (a later clip may carry the closing decision)
    ended_after_clip: bool = False
    label: str | None = Field(None, max_length=64)  # SKU decided; None when nothing was seen
    confidence: Unit  # barcode: share of reads agreeing; vote: the winner's mean probability
    source: Literal["barcode", "vote", "none"]
    n_frames: NonNeg  # frames of the insertion (all of them, also those before the clip)
    n_voting: NonNeg  # of those, frames whose top-1 was a product
    vote_label: str | None = Field(None, max_length=64)  # the model alone
    vote_confidence: Unit
    barcode: str | None = Field(None, max_length=64)

    @model_validator(mode="after")
    def _ordered(self) -> InsertionSummary:
        if self.last_frame < self.first_frame:
            raise ValueError("last_frame must not precede first_frame")
        if self.n_voting > self.n_frames:
            raise ValueError("n_voting cannot exceed n_frames")
        if (self.source == "barcode") != (self.barcode is not None):
            raise ValueError("barcode is set exactly when the source is a barcode")
        return self


class ClipSidecarV2(ClipSidecarV1):
    """V1 plus the device's per-insertion decisions: `insertions` closed within the clip."""

    schema_version: Literal[2] = 2  # type: ignore[assignment]
    insertions: list[InsertionSummary] = []

    @model_validator(mode="after")
    def _insertions_in_clip(self) -> ClipSidecarV2:
        for i, ins in enumerate(self.insertions):
            if ins.last_frame >= self.clip.frame_count:
                raise ValueError(f"insertions.{i}.last_frame {ins.last_frame} is past the clip's "
                                 "last frame")
        return self


# -- device status report ----------------------------------------------------------------------


class LatencyMs(_Doc):
    p50: Annotated[float, Field(ge=0)]
    p99: Annotated[float, Field(ge=0)]


class OtaState(_Doc):
    channel: SafeId
    release_id: SafeId | None = None
    state: Literal["idle", "downloading", "verified", "active", "probing", "rolled_back", "failed"]
    detail: str = Field("", max_length=1000)


class StatusReportV1(_Doc):
    schema_: Literal["flywheel.status_report"] = Field("flywheel.status_report", alias="schema")
    schema_version: Literal[1] = 1
    device_id: SafeId
    store_id: SafeId
    reported_at: UtcTime
    agent_version: str = Field(min_length=1, max_length=64)
    model_version: SafeId
    rule_set_version: str = Field(min_length=1, max_length=64)
    window_s: Annotated[float, Field(gt=0)]  # the period these counters cover
    frames_processed: NonNeg
    fire_counts: dict[str, NonNeg] = {}  # rule -> firings in the window
    captures: NonNeg = 0
    drops: dict[str, NonNeg] = {}  # cause -> captures dropped ("queue_full", "spool_cap", ...)
    capture_pauses: NonNeg = 0  # captures refused because free disk was below the threshold
    cleanups: NonNeg = 0  # spooled clips deleted oldest-first before upload
    spool_bytes: NonNeg = 0
    spool_clips: NonNeg = 0
    uploaded_clips: NonNeg = 0
    uploaded_bytes: NonNeg = 0
    upload_bytes_per_s: Annotated[float, Field(ge=0)] = 0.0
    upload_failures: NonNeg = 0
    inference_latency_ms: LatencyMs
    ota: OtaState | None = None

    model_config = ConfigDict(populate_by_name=True)


class HealthFigures(_Doc):
    """What the release health gates read, counted over the report's window."""

    crashes: NonNeg = 0  # inference or agent crashes
    restarts: NonNeg = 0  # agent (re)starts
    validation_failures: NonNeg = 0  # OTA golden-input validations that failed
    predictions: NonNeg = 0  # insertions the model judged
    barcode_checked: NonNeg = 0  # insertions with a barcode read to compare the top-1 with
    barcode_agree: NonNeg = 0  # of those, top-1 == barcode
    low_confidence: NonNeg = 0  # predictions below the low-confidence threshold
    weight_steps: NonNeg = 0  # weight steps (an item in or out) judged; 0 from agents before it
    weight_inconsistent: NonNeg = 0  # of those, no product named within the window around the step
    shadow_frames: NonNeg = 0  # frames the shadow model also judged
    shadow_agree: NonNeg = 0  # of those, shadow top-1 == production top-1
    insertions: NonNeg = 0  # insertions the device decided (edge_agent/insertion.py)
    insertions_low_confidence: NonNeg = 0  # of those, decided below the low-confidence mark

    @model_validator(mode="after")
    def _bounded(self) -> HealthFigures:
        if self.barcode_agree > self.barcode_checked or self.shadow_agree > self.shadow_frames:
            raise ValueError("agreements cannot exceed what was checked")
        if self.insertions_low_confidence > self.insertions:
            raise ValueError("insertions_low_confidence cannot exceed insertions")
        if self.weight_steps and self.weight_inconsistent > self.weight_steps:  # 0: an older agent
            raise ValueError("weight_inconsistent cannot exceed weight_steps")
        return self


class OtaStateV2(_Doc):
    channel: SafeId
    release_id: SafeId | None = None  # the release being installed, or running
    state: Literal["idle", "downloading", "verified", "swapping", "active", "probing", "rolled_back",
                   "failed"]
    detail: str = Field("", max_length=1000)
    shadow_release_id: SafeId | None = None  # the candidate this device runs in shadow


class StatusReportV2(StatusReportV1):
    """V1 plus the release's view: OTA state with shadow, and health figures for the gates."""

    schema_version: Literal[2] = 2  # type: ignore[assignment]
    ota: OtaStateV2 | None = None  # type: ignore[assignment]
    health: HealthFigures = HealthFigures()


# -- release manifest --------------------------------------------------------------------------


class Artifact(_Doc):
    name: SafeId  # e.g. "model.onnx"
    key: Key  # lake key of the artifact
    sha256: Sha256
    size_bytes: NonNeg


class Rollout(_Doc):
    stage: Literal["canary", "full", "halted", "rolled_back"]
    percent: Annotated[float, Field(ge=0, le=100)]  # share of devices that should take it
    devices: list[SafeId] = []  # explicit canary devices, on top of the percentage


class ReleaseManifestV1(_Doc):
    schema_: Literal["flywheel.release_manifest"] = Field("flywheel.release_manifest",
                                                           alias="schema")
    schema_version: Literal[1] = 1
    channel: SafeId
    release_id: SafeId
    model_id: SafeId
    previous_model_id: SafeId | None = None  # what devices roll back to
    created_at: UtcTime
    expires_at: UtcTime  # devices refuse stale manifests (freeze attacks)
    sequence: NonNeg  # strictly increasing per channel (rollback attacks)
    artifacts: list[Artifact] = Field(min_length=1)
    rollout: Rollout
    min_agent_version: str = Field("0.0.0", max_length=64)
    gate_report_key: Key | None = None

    model_config = ConfigDict(populate_by_name=True)

    @model_validator(mode="after")
    def _consistent(self) -> ReleaseManifestV1:
        if self.expires_at <= self.created_at:
            raise ValueError("expires_at must be after created_at")
        names = [a.name for a in self.artifacts]
        if len(set(names)) != len(names):
            raise ValueError("artifact names must be unique")
        return self


# -- correction batch --------------------------------------------------------------------------


class Correction(_Doc):
    frame_id: SafeId
    clip_id: SafeId | None = None
    action: Literal["confirm", "relabel", "reject", "set_box"]
    sku: Ean13 | None = None  # the corrected label (None with "reject": no product in frame)
    box: Box | None = None
    previous_sku: Ean13 | None = None  # what the pre-label said
    annotator: SafeId
    corrected_at: UtcTime
    note: str = Field("", max_length=2000)

    @model_validator(mode="after")
    def _action_fields(self) -> Correction:
        if self.action == "relabel" and self.sku is None:
            raise ValueError("relabel needs sku")
        if self.action == "set_box" and self.box is None:
            raise ValueError("set_box needs box")
        if self.box is not None and not (self.box[0] < self.box[2] and self.box[1] < self.box[3]):
            raise ValueError("box must be [x1, y1, x2, y2] with x1 < x2 and y1 < y2")
        return self


class CorrectionBatchV1(_Doc):
    schema_: Literal["flywheel.correction_batch"] = Field("flywheel.correction_batch",
                                                           alias="schema")
    schema_version: Literal[1] = 1
    batch_id: SafeId
    tool: str = Field(min_length=1, max_length=64)  # the annotation tool that exported it
    exported_at: UtcTime
    corrections: list[Correction] = Field(min_length=1)

    model_config = ConfigDict(populate_by_name=True)


# -- device model ------------------------------------------------------------------------------

Positive = Annotated[float, Field(gt=0.0)]


class DetectorV1(_Doc):
    """A two-stage slot's item detector (edge_agent/crop.py): a one-class ultralytics detect model
    whose best box is cropped square and handed to the slot's `model.onnx` (the crop classifier,
    `input_size` its crop side). The file sits in the same slot and ships in the same signed
    release; `sha256` (signed with model.json) is checked before the device loads it."""

    file: str = Field("detector.onnx", pattern=r"^[A-Za-z0-9_-]+\.onnx$")  # a name in the slot
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    input_size: Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=2, max_length=2)]  # [h, w]
    # crop side = the box's longer side x margin; white balance = the classifier's, by the
    # whole frame's gains
    crop_margin: Positive = 1.3
    min_confidence: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0  # the rule's box threshold (crop.combine)
    empty_rule: Literal["product", "gate", "cls"] = "product"  # edge_agent.crop.combine

    @field_validator("file")
    @classmethod
    def _not_the_classifier(cls, v: str) -> str:
        if v == "model.onnx":
            raise ValueError("the detector cannot be the slot's classifier (model.onnx)")
        return v


class DeviceModelV1(_Doc):
    """A model slot's `model.json`, beside `model.onnx`: what the device needs to label, size and
    normalise exactly as evaluation did. The registry writes it (models/<id>/device.json).
    With `detector` the slot is two-stage: model.onnx classifies the detector's crop."""

    schema_: Literal["flywheel.device_model"] = Field("flywheel.device_model", alias="schema")
    schema_version: Literal[1] = 1
    model_version: SafeId  # the registry's model id
    labels: list[str] = Field(min_length=1)  # output index -> SKU; "empty"/"none"/"" = no product
    # [h, w]; None: the ONNX input's static shape
    input_size: Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=2, max_length=2)] | None = None
    mean: Annotated[list[float], Field(min_length=3, max_length=3)] = [0.0, 0.0, 0.0]  # per RGB channel
    std: Annotated[list[Positive], Field(min_length=3, max_length=3)] = [1.0, 1.0, 1.0]
    output: str = Field("", max_length=500)  # what the output tensor holds, for people
    # edge_agent/whitebalance.py, applied after the resize; absent in older slots = "none"
    white_balance: Literal["none", "gray_world", "gray_world_exposure"] = "none"
    detector: DetectorV1 | None = None  # absent in older slots = one-stage (whole frame)

    model_config = ConfigDict(populate_by_name=True)


# -- parsing -----------------------------------------------------------------------------------

ClipSidecar = ClipSidecarV1  # the base of every version: readers use V1's fields
StatusReport = StatusReportV1
ReleaseManifest = ReleaseManifestV1
CorrectionBatch = CorrectionBatchV1
DeviceModel = DeviceModelV1

_REGISTRY: dict[str, dict[int, type[_Doc]]] = {
    "flywheel.clip_sidecar": {1: ClipSidecarV1, 2: ClipSidecarV2},
    "flywheel.status_report": {1: StatusReportV1, 2: StatusReportV2},
    "flywheel.release_manifest": {1: ReleaseManifestV1},
    "flywheel.correction_batch": {1: CorrectionBatchV1},
    "flywheel.device_model": {1: DeviceModelV1},
}
MAX_DOC_BYTES = 16 * 1024 * 1024  # a sidecar of a long clip is ~1 MB; anything far bigger is hostile

T = TypeVar("T", bound=_Doc)


def parse_document(raw: bytes | str | dict[str, Any], expect: type[T]) -> T:
    """Parse and validate one document of kind `expect` (any registered version of that kind)."""
    kind = expect.model_fields["schema_"].default
    doc = _load_json(raw)
    if doc.get("schema") != kind:
        raise ContractError("schema", f"expected {kind!r}, got {doc.get('schema')!r}")
    version = doc.get("schema_version")
    versions = _REGISTRY[kind]
    if type(version) is not int or version not in versions:
        raise ContractError("schema_version",
                            f"unknown version {version!r} of {kind}; supported: {sorted(versions)}")
    model = versions[version]
    try:
        return model.model_validate(doc)  # type: ignore[return-value]
    except RecursionError:
        raise ContractError("document", "nested too deeply") from None
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "document"
        reason = re.sub(r"^Value error, ", "", first["msg"])
        raise ContractError(field, reason) from None


def dump_document(doc: _Doc) -> bytes:
    """Canonical JSON bytes (sorted keys, no whitespace): stable for hashing and signing."""
    data = doc.model_dump(mode="json", by_alias=True)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _load_json(raw: bytes | str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(raw, dict):
        doc = raw
    else:
        if len(raw) > MAX_DOC_BYTES:
            raise ContractError("document", f"larger than {MAX_DOC_BYTES} bytes")
        try:
            # RFC 8259: JSON between systems is UTF-8 (json.loads would also guess UTF-16 and -32)
            doc = json.loads(raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw)
        except RecursionError:
            raise ContractError("document", "JSON nested too deeply") from None
        except ValueError as e:  # bad UTF-8, bad JSON, an integer too long to convert
            raise ContractError("document", f"not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ContractError("document", f"must be a JSON object, got {type(doc).__name__}")
    return doc


def parse_sidecar(raw: bytes | str | dict[str, Any]) -> ClipSidecarV1 | ClipSidecarV2:
    return parse_document(raw, ClipSidecarV1)


def parse_status_report(raw: bytes | str | dict[str, Any]) -> StatusReportV1 | StatusReportV2:
    return parse_document(raw, StatusReportV1)


def parse_release_manifest(raw: bytes | str | dict[str, Any]) -> ReleaseManifest:
    return parse_document(raw, ReleaseManifestV1)


def parse_correction_batch(raw: bytes | str | dict[str, Any]) -> CorrectionBatch:
    return parse_document(raw, CorrectionBatchV1)


def parse_device_model(raw: bytes | str | dict[str, Any]) -> DeviceModel:
    """A slot's model.json. Slots written before the document was versioned carry no `schema`:
    they are read as version 1 (the fields are the same), so a device keeps its installed model."""
    doc = _load_json(raw)
    if "schema" not in doc:
        doc = {"schema": "flywheel.device_model", "schema_version": 1, **doc}
    return parse_document(doc, DeviceModelV1)
