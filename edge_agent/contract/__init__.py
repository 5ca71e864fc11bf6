"""The edge-cloud contract: lake layout, versioned document schemas, path safety.

The cloud consumes what devices write, so the contract lives here on the device side and the
cloud imports it.
"""

from edge_agent.contract.errors import ContractError
from edge_agent.contract.ids import validate_id, validate_key
from edge_agent.contract.schemas import (
    ClipSidecar,
    CorrectionBatch,
    DeviceModel,
    ReleaseManifest,
    StatusReport,
    dump_document,
    parse_correction_batch,
    parse_device_model,
    parse_release_manifest,
    parse_sidecar,
    parse_status_report,
)

__all__ = [
    "ClipSidecar",
    "ContractError",
    "CorrectionBatch",
    "DeviceModel",
    "ReleaseManifest",
    "StatusReport",
    "dump_document",
    "parse_correction_batch",
    "parse_device_model",
    "parse_release_manifest",
    "parse_sidecar",
    "parse_status_report",
    "validate_id",
    "validate_key",
]
