"""The Learner's steps as plain functions; the Dagster assets in assets/learner.py are thin calls.

    import_from_simulator -> build_dataset -> train_candidate (Ray) -> evaluate_candidate -> gate
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from edge_agent.lake import Lake
from flywheel.learner import depot_sets, registry
from flywheel.learner.config import DatasetSpec, GateRules, TrainConfig
from flywheel.learner.datasets import DatasetVersion, preflight, write_dataset_version
from flywheel.learner.errors import DatasetError
from flywheel.learner.frames import read_frames
from flywheel.learner.gate import GateDecision, decide, write_decision
from flywheel.learner.train import TrainRequest, TrainResult, run_training

DATASET_POINTER = "depot/learner/latest_dataset.json"  # which version the next training uses
CANDIDATE_POINTER = "depot/learner/latest_candidate.json"  # which model the evaluation looks at


@dataclass(frozen=True)
class SimSources:
    """What the simulator exports as the loop's starting data (sizes kept small for CPU)."""

    seed: int = 0  # world + dataset seed: the same seed gives byte-identical Parquet files
    n_per_sku: int = 24  # bootstrap frames per core SKU
    n_test: int = 200  # frames per frozen standard test set
    n_insertions: int = 60  # whole insertions per frozen insertion set (one per store; 0: none)


def import_from_simulator(lake: Lake, src: SimSources) -> dict[str, depot_sets.Imported]:
    """Catalog, manual collection and frozen standard sets from the simulator, into the depot."""
    from flywheel.sim import default_world
    from flywheel.sim.export import (
        build_bootstrap_dataset,
        build_manual_test_set,
        build_production_test_set,
        export_dataset,
    )

    world = default_world(src.seed)
    out = {"catalog": depot_sets.import_catalog(lake, world.catalog.to_json())}
    with tempfile.TemporaryDirectory() as tmp:
        def parquet(frames, name: str) -> bytes:
            path = Path(tmp) / f"{name}.parquet"
            export_dataset(frames, path)
            return path.read_bytes()

        out["manual_collection"] = depot_sets.import_manual_collection(
            lake, parquet(build_bootstrap_dataset(src.seed, src.n_per_sku, world=world), "bootstrap"))
        out[depot_sets.MANUAL_SET] = depot_sets.import_standard_set(
            lake, depot_sets.MANUAL_SET,
            parquet(build_manual_test_set(src.seed, src.n_test, world=world), "manual"))
        for store in world.store_names:
            name = f"store_{store}"
            out[name] = depot_sets.import_standard_set(
                lake, name, parquet(build_production_test_set(store, src.seed, src.n_test, world=world),
                                    name))
        if src.n_insertions:
            out.update(_import_insertion_sets(lake, src, world, Path(tmp)))
    return out


def _import_insertion_sets(lake: Lake, src: SimSources, world, tmp: Path
                           ) -> dict[str, depot_sets.Imported]:
    from flywheel.learner.insertion_sets import import_insertion_set
    from flywheel.sim.insertions import build_insertion_test_set, export_insertion_set

    out = {}
    for store in world.store_names:
        name = f"insertions_store_{store}"
        path = tmp / f"{name}.parquet"
        export_insertion_set(build_insertion_test_set(store, src.seed, src.n_insertions, world=world),
                             path)
        out[name] = import_insertion_set(lake, name, path.read_bytes())
    return out


def build_dataset(lake: Lake, spec: DatasetSpec, extra_sources: tuple[str, ...] = ()
                  ) -> tuple[DatasetVersion, bool]:
    """The manual collection plus any extra labelled-frame Parquet files (lake keys, same columns
    as the simulator's export: e.g. the Label stage's merged corrections). Validated and
    leakage-guarded against the frozen standard sets; the pointer tells training which to use."""
    current, frames = depot_sets.read_manual_collection(lake)
    if extra_sources:
        cols = frames.columns
        frames = pl.concat([frames, *[read_frames(lake.get(k)).select(cols) for k in extra_sources]],
                           how="vertical_relaxed")
    frozen_frames, frozen_sessions = depot_sets.frozen_ids(lake)
    leaked_sessions = set(frames["session_id"].unique().to_list()) & frozen_sessions
    if leaked_sessions:
        raise DatasetError(f"{len(leaked_sessions)} session(s) appear in both the training sources "
                           f"and a frozen standard test set, e.g. {sorted(leaked_sessions)[0]}")
    ds, created = write_dataset_version(lake, frames, spec, depot_sets.catalog_skus(lake),
                                        [current["key"], *extra_sources], frozen_frames)
    registry.put_json(lake, DATASET_POINTER, {"version": ds.version})
    return ds, created


def latest_dataset_version(lake: Lake) -> str:
    return registry.get_json(lake, DATASET_POINTER)["version"]


def train_candidate(lake: Lake, config: TrainConfig, rules: GateRules,
                    runner: Callable[[TrainRequest], TrainResult] = run_training,
                    dataset_version: str | None = None) -> TrainResult:
    """Train on the latest dataset version through `runner` (train_on_ray in the asset)."""
    version = dataset_version or latest_dataset_version(lake)
    catalog = depot_sets.catalog_skus(lake)
    preflight(lake, version, catalog)  # fail here, not after a cluster has been scheduled
    req = TrainRequest(
        lake_uri=lake.uri, lake_s3=lake.s3, dataset_version=version, config=config,
        model_id=registry.new_model_id(config.task, version, config.as_dict()),
        parent_model_id=registry.production_model_id(lake), code_version=registry.code_version(),
        catalog=tuple(sorted(catalog)), rules=rules)
    result = runner(req)
    registry.put_json(lake, CANDIDATE_POINTER, {"model_id": result.model_id})
    return result


def latest_candidate(lake: Lake) -> str:
    return registry.get_json(lake, CANDIDATE_POINTER)["model_id"]


def evaluate_registered(lake: Lake, model_id: str, test_sets: dict, production_sets: list[str],
                        insertion_sets: dict | None = None) -> dict:
    from flywheel.learner.evaluate import evaluate_model
    from flywheel.learner.onnx_tools import latency_ms, onnx_session

    card = registry.read_card(lake, model_id)
    session = onnx_session(lake.get(registry.key(model_id, "model.onnx")))
    latency = latency_ms(session, card["imgsz"])
    if card["task"] == "detect":
        from flywheel.learner.evaluate import evaluate_detect

        with tempfile.TemporaryDirectory(prefix="flywheel-weights-") as tmp:
            weights = registry.fetch_file(lake, model_id, "weights.pt", Path(tmp))
            return evaluate_detect(weights, card["classes"], card["imgsz"], test_sets,
                                   production_sets, latency)
    result = evaluate_model(session, card["classes"], card["imgsz"], test_sets, production_sets, latency)
    if insertion_sets:
        from flywheel.learner.insertion_eval import evaluate_insertions

        ins = evaluate_insertions(session, card["classes"], card["imgsz"], insertion_sets,
                                  depot_sets.catalog_skus(lake))
        result["insertions"] = ins["sets"]
        result["slices"].update(ins["slices"])
        result["metrics"].update(ins["metrics"])
    return result


def evaluate_candidate(lake: Lake, model_id: str | None = None) -> dict:
    """Candidate and production on the same frozen sets with the same code: comparable numbers."""
    from flywheel.learner.evaluate import comparison_report

    model_id = model_id or latest_candidate(lake)
    from flywheel.learner.insertion_sets import read_insertion_sets

    test_sets, versions = depot_sets.read_standard_sets(lake)
    insertion_sets, insertion_versions = read_insertion_sets(lake)
    prod_sets = depot_sets.production_set_names(list(test_sets))
    candidate = evaluate_registered(lake, model_id, test_sets, prod_sets, insertion_sets)
    production_id = registry.production_model_id(lake)
    production = None
    if production_id and production_id != model_id:
        production = evaluate_registered(lake, production_id, test_sets, prod_sets, insertion_sets)
    else:
        production_id = None
    evaluation = {"candidate_id": model_id, "candidate": candidate, "production_id": production_id,
                  "production": production, "test_set_versions": versions,
                  "insertion_set_versions": insertion_versions,
                  "report_md": comparison_report(model_id, candidate, production_id, production)}
    registry.put_json(lake, registry.key(model_id, "evaluation.json"), evaluation)
    lake.put(registry.key(model_id, "report.md"), evaluation["report_md"].encode())
    return evaluation


def gate_candidate(lake: Lake, rules: GateRules | None = None, model_id: str | None = None
                   ) -> GateDecision:
    """Decide from the stored evaluation and the card's ONNX validation; record gate.json.
    Without explicit rules, the defaults for the candidate's task apply."""
    model_id = model_id or latest_candidate(lake)
    card = registry.read_card(lake, model_id)
    rules = rules or GateRules.for_task(card["task"])
    evaluation = registry.get_json(lake, registry.key(model_id, "evaluation.json"))
    decision = decide(model_id, evaluation["candidate"], card["onnx_validation"], rules,
                      evaluation.get("production_id"), evaluation.get("production"))
    write_decision(lake, decision)
    return decision
