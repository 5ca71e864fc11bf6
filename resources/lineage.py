"""The IO manager for lineage: the typed references assets pass downstream (flywheel/refs.py),
kept as small JSON documents in the lake, one per run that produced them:

    lineage/<asset key>/[<partition>/]<run_id>.json

A downstream step in the same run reads the reference its own run wrote, so overlapping runs (the
weekly schedule, a manual run, a backfill) never see each other's dataset or candidate. A step whose
upstream is not part of its run reads the upstream's latest materialization *as Dagster recorded it*
(that run's document), never a mutable pointer.
"""

from __future__ import annotations

import json

import dagster as dg

from flywheel.refs import REF_TYPES, Ref
from resources.lake import LakeResource

LINEAGE_PREFIX = "lineage"


def ref_key(asset_key: dg.AssetKey, run_id: str, partition: str | None = None) -> str:
    parts = [LINEAGE_PREFIX, *asset_key.path, *([partition] if partition else []), f"{run_id}.json"]
    return "/".join(parts)


def _upstream_run_id(context: dg.InputContext) -> str | None:
    try:
        return context.upstream_output.run_id if context.upstream_output else None
    except dg.DagsterInvariantViolationError:  # an upstream outside this run's plan has none
        return None


class LakeRefIOManager(dg.ConfigurableIOManager):
    """Stores and loads `flywheel.refs.Ref` values as JSON in the lake, keyed by the producing run."""

    lake: LakeResource

    def handle_output(self, context: dg.OutputContext, obj: Ref) -> None:
        if not isinstance(obj, Ref):
            raise TypeError(f"{context.asset_key.to_user_string()}: the lineage IO manager stores "
                            f"references (flywheel.refs), got {type(obj).__name__}")
        partition = context.partition_key if context.has_partition_key else None
        key = ref_key(context.asset_key, context.run_id, partition)
        doc = {"type": type(obj).__name__, "ref": obj.model_dump(mode="json")}
        self.lake.lake().put(key, json.dumps(doc, sort_keys=True).encode())
        context.add_output_metadata({"ref": key, "ref_id": obj.id, "ref_sha256": obj.sha256[:16]})

    def load_input(self, context: dg.InputContext) -> Ref:
        asset_key = context.asset_key
        partition = context.asset_partition_key if context.has_asset_partitions else None
        lake = self.lake.lake()
        # the run that produced the upstream output in this plan: this run, or on a re-execution
        # the parent run that Dagster resolved it from
        run_id = _upstream_run_id(context) or context.run_id
        key = ref_key(asset_key, run_id, partition)
        if not lake.exists(key):  # the upstream ran in another run: the one Dagster recorded last
            event = context.instance.get_latest_materialization_event(asset_key)
            if event is None:
                raise dg.DagsterInvariantViolationError(
                    f"{asset_key.to_user_string()} has no materialization to take a reference from; "
                    "materialize it first (or in the same run)")
            key = ref_key(asset_key, event.run_id, partition)
        doc = json.loads(lake.get(key))
        ref_type = REF_TYPES.get(doc.get("type", ""))
        if ref_type is None:
            raise ValueError(f"{key}: unknown reference type {doc.get('type')!r}")
        return ref_type.model_validate(doc["ref"])
