"""The Learner's steps as plain functions; the Dagster assets in assets/learner.py are thin calls.

    import_from_simulator -> build_dataset -> train_candidate (Ray) -> evaluate_candidate -> gate

Each step names exactly what it works on: a DatasetRef, a ModelRef, an EvaluationRef (flywheel/refs.py)
handed over by the step before, never a "latest" pointer another run may have moved meanwhile.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from edge_agent.lake import Lake, ObjectNotFound
from flywheel.learner import reference_sets, registry, two_stage
from flywheel.learner.config import DatasetSpec, GateRules, TrainConfig
from flywheel.learner.datasets import DatasetVersion, preflight, write_dataset_version
from flywheel.learner.documents import EvaluationV1, parse
from flywheel.learner.errors import DatasetError, RegistryError
from flywheel.learner.gate import GateDecision, decide, write_decision
from flywheel.learner.labelled_frames import read_frames
from flywheel.learner.train import TrainRequest, TrainResult, run_training
from flywheel.refs import DatasetRef, EvaluationRef, LabelsRef, ModelRef, ref_for


@dataclass(frozen=True)
class SimSources:
    """What the simulator exports as the loop's starting data (sizes kept small for CPU)."""

    seed: int = 0  # world + dataset seed: the same seed gives byte-identical Parquet files
    n_per_sku: int = 24  # bootstrap frames per core SKU
    n_test: int = 200  # frames per frozen standard test set
    n_insertions: int = 60  # whole insertions per frozen insertion set (one per store; 0: none)


def import_from_simulator(lake: Lake, src: SimSources) -> dict[str, reference_sets.Imported]:
    """Catalog, manual collection and frozen standard sets from the simulator, into the depot."""
    from flywheel.sim import default_world
    from flywheel.sim.export import (
        build_bootstrap_dataset,
        build_manual_test_set,
        build_production_test_set,
        export_dataset,
    )

    world = default_world(src.seed)
    out = {"catalog": reference_sets.import_catalog(lake, world.catalog.to_json())}
    with tempfile.TemporaryDirectory() as tmp:
        def parquet(frames, name: str) -> bytes:
            path = Path(tmp) / f"{name}.parquet"
            export_dataset(frames, path)
            return path.read_bytes()

        out["manual_collection"] = reference_sets.import_manual_collection(
            lake, parquet(build_bootstrap_dataset(src.seed, src.n_per_sku, world=world), "bootstrap"))
        out[reference_sets.MANUAL_SET] = reference_sets.import_standard_set(
            lake, reference_sets.MANUAL_SET,
            parquet(build_manual_test_set(src.seed, src.n_test, world=world), "manual"))
        for store in world.store_names:
            name = f"store_{store}"
            out[name] = reference_sets.import_standard_set(
                lake, name, parquet(build_production_test_set(store, src.seed, src.n_test, world=world),
                                    name))
        if src.n_insertions:
            out.update(_import_insertion_sets(lake, src, world, Path(tmp)))
    return out


def _import_insertion_sets(lake: Lake, src: SimSources, world, tmp: Path
                           ) -> dict[str, reference_sets.Imported]:
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
    leakage-guarded against the frozen standard sets; `dataset_ref` names it for training."""
    current, frames = reference_sets.read_manual_collection(lake)
    if extra_sources:
        cols = frames.columns
        frames = pl.concat([frames, *[read_frames(lake.get(k)).select(cols) for k in extra_sources]],
                           how="vertical_relaxed")
    frozen_frames, frozen_sessions = reference_sets.frozen_ids(lake)
    leaked_sessions = set(frames["session_id"].unique().to_list()) & frozen_sessions
    if leaked_sessions:
        raise DatasetError(f"{len(leaked_sessions)} session(s) appear in both the training sources "
                           f"and a frozen standard test set, e.g. {sorted(leaked_sessions)[0]}")
    # ids are whatever a source chose: the same picture under a new id is caught by its bytes.
    # Item frames only: a fixed camera over an empty cart yields identical empty frames everywhere
    frozen_sets = (reference_sets.read_standard_sets(lake)[0]
                   if reference_sets.standard_set_names(lake) else {})
    items = pl.col("is_empty").fill_null(False).not_()
    leaked = exact_leaks(frames.filter(items)["image_png"].to_list(),
                         {n: f.filter(items)["image_png"].to_list() for n, f in frozen_sets.items()})
    if leaked:
        raise DatasetError(f"training images are byte-identical to frozen standard test set images "
                           f"({leaked}); training must never see them")
    ds, created = write_dataset_version(lake, frames, spec, reference_sets.catalog_skus(lake),
                                        [current["key"], *extra_sources], frozen_frames)
    return ds, created


def labelled_sources(lake: Lake, refs: dict[str, LabelsRef]) -> tuple[str, ...]:
    """Lake keys of the Label stage's labelled frames, day order, each checked against the hash
    its reference carries (a day relabelled since is refused, not silently mixed in)."""
    for ref in refs.values():
        if ref.rows:
            ref.read(lake)
    return tuple(refs[d].key for d in sorted(refs) if refs[d].rows)


def dataset_ref(lake: Lake, ds: DatasetVersion) -> DatasetRef:
    return ref_for(lake, DatasetRef, f"{ds.prefix}/manifest.json", version=ds.version)


def model_ref(lake: Lake, model_id: str) -> ModelRef:
    return ref_for(lake, ModelRef, registry.key(model_id, "model.json"), model_id=model_id)


def evaluation_ref(lake: Lake, model_id: str) -> EvaluationRef:
    return ref_for(lake, EvaluationRef, registry.key(model_id, "evaluation.json"), model_id=model_id)


def train_candidate(lake: Lake, config: TrainConfig, rules: GateRules, dataset: DatasetRef,
                    runner: Callable[[TrainRequest], TrainResult] = run_training) -> TrainResult:
    """Train on exactly `dataset` through `runner` (train_on_ray in the asset)."""
    dataset.read(lake)  # the manifest is still the one the reference names
    version = dataset.version
    catalog = reference_sets.catalog_skus(lake)
    ds = preflight(lake, version, catalog)  # fail here, not after a cluster has been scheduled
    config = two_stage.fit_config(config, ds.classes)
    req = TrainRequest(
        lake_uri=lake.uri, lake_s3=lake.s3, dataset_version=version, config=config,
        model_id=registry.new_model_id(config.task, version, config.as_dict()),
        parent_model_id=registry.production_model_id(lake), code_version=registry.code_version(),
        catalog=tuple(sorted(catalog)), rules=rules)
    return runner(req)


def evaluate_registered(lake: Lake, model_id: str, test_sets: dict, production_sets: list[str],
                        insertion_sets: dict | None = None) -> dict:
    from flywheel.learner.onnx_tools import latency_ms, onnx_session

    card = registry.read_card(lake, model_id)
    if two_stage.is_two_stage(card):  # the device's own runtime on a slot of the registry files
        with tempfile.TemporaryDirectory(prefix="flywheel-slot-") as tmp:
            model = two_stage.SlotModel(lake, model_id, Path(tmp))
            return _evaluate_classifier(lake, model, card, test_sets, production_sets, insertion_sets,
                                        model.latency_ms(two_stage.first_frame(test_sets)))
    session = onnx_session(lake.get(registry.key(model_id, "model.onnx")))
    latency = latency_ms(session, card.imgsz)
    if card.task == "detect":
        from flywheel.learner.evaluate import evaluate_detect

        with tempfile.TemporaryDirectory(prefix="flywheel-weights-") as tmp:
            weights = registry.fetch_file(lake, model_id, "weights.pt", Path(tmp))
            return evaluate_detect(weights, card.classes, card.imgsz, test_sets,
                                   production_sets, latency)
    return _evaluate_classifier(lake, session, card, test_sets, production_sets, insertion_sets,
                                latency)


def _evaluate_classifier(lake: Lake, session, card, test_sets: dict, production_sets: list[str],
                         insertion_sets: dict | None, latency: dict) -> dict:
    """Per frame and per insertion; `session`: an ONNX session, or a two_stage.SlotModel."""
    from flywheel.learner.evaluate import evaluate_model

    wb = card.preprocessing.get("white_balance", "none")
    result = evaluate_model(session, card.classes, card.imgsz, test_sets, production_sets, latency,
                            wb)
    if insertion_sets:
        from flywheel.learner.insertion_eval import evaluate_insertions

        ins = evaluate_insertions(session, card.classes, card.imgsz, insertion_sets,
                                  reference_sets.catalog_skus(lake), wb)
        result["insertions"] = ins["sets"]
        result["slices"].update(ins["slices"])
        result["metrics"].update(ins["metrics"])
    return result


def choose_sets(names: list[str], gate_sets: list[str] | None = None,
                reference_set: str | None = reference_sets.MANUAL_SET) -> tuple[list[str], list[str]]:
    """(sets to evaluate, sets pooled into the gate's target metric). Named gate sets, plus the
    reference set (reported as manual_*, never gated) when the lake has it; by default every set
    but the reference gates, and a lake whose only set is the reference gates on that one."""
    if gate_sets:
        unknown = sorted(set(gate_sets) - set(names))
        if unknown:
            raise DatasetError(f"gate set(s) {unknown} are not standard sets in the lake {names}")
        extra = [reference_set] if reference_set in names and reference_set not in gate_sets else []
        return sorted({*gate_sets, *extra}), sorted(gate_sets)
    gated = [n for n in names if n != reference_set] or list(names)
    return list(names), gated


def evaluate_candidate(lake: Lake, model: ModelRef | str, gate_sets: list[str] | None = None,
                       reference_set: str | None = reference_sets.MANUAL_SET) -> EvaluationV1:
    """Candidate and production on the same frozen sets with the same code: comparable numbers.
    `model` is a ModelRef (its card verified) or a registered model id; see choose_sets."""
    from flywheel.learner.evaluate import comparison_report
    from flywheel.learner.insertion_sets import read_insertion_sets

    if isinstance(model, ModelRef):
        model.read(lake)
    model_id = model.model_id if isinstance(model, ModelRef) else model
    names, prod_sets = choose_sets(reference_sets.standard_set_names(lake), gate_sets, reference_set)
    test_sets, versions = reference_sets.read_standard_sets(lake, names)
    insertion_sets, insertion_versions = read_insertion_sets(lake)
    code = registry.code_version()
    candidate = evaluate_registered(lake, model_id, test_sets, prod_sets, insertion_sets)
    production_id = registry.production_model_id(lake)
    production, reused = None, False
    if production_id and production_id != model_id:
        earlier = earlier_evaluation(lake, production_id, code, versions, prod_sets, insertion_versions)
        reused = earlier is not None
        production = earlier or evaluate_registered(lake, production_id, test_sets, prod_sets,
                                                    insertion_sets)
    else:
        production_id = None
    evaluation = EvaluationV1(
        candidate_id=model_id, candidate=candidate, production_id=production_id,
        production=production, test_set_versions=versions, gate_sets=prod_sets,
        insertion_set_versions=insertion_versions, code_version=code, production_reused=reused,
        report_md=comparison_report(model_id, candidate, production_id, production))
    registry.write_evaluation(lake, evaluation)
    lake.put(registry.key(model_id, "report.md"), evaluation.report_md.encode())
    return evaluation


def earlier_evaluation(lake: Lake, model_id: str, code: str, versions: dict[str, str],
                       gate_sets: list[str], insertion_versions: dict[str, str]) -> dict | None:
    """`model_id`'s figures from its own evaluation when that one ran the same committed code on
    the same frozen sets (by sha256) and gate sets: evaluation is deterministic there, so measuring
    production again each turn (~25 s of the demo's ~50 s evaluation) repeats it. A local change
    ("-dirty"), an unknown version, other sets or no record: None (measure again)."""
    if code == "unknown" or code.endswith("-dirty"):
        return None
    try:
        earlier = registry.read_evaluation(lake, model_id)
    except (ObjectNotFound, RegistryError):
        return None
    same = (earlier.candidate_id == model_id and earlier.code_version == code
            and earlier.test_set_versions == versions and earlier.gate_sets == gate_sets
            and earlier.insertion_set_versions == insertion_versions)
    return earlier.candidate.model_dump() if same else None


def gate_candidate(lake: Lake, evaluation_of: EvaluationRef | str, rules: GateRules | None = None
                   ) -> GateDecision:
    """Decide from the evaluation (an EvaluationRef, verified, or a model id: its stored one) and the
    card's ONNX validation; record gate.json. Without explicit rules, the candidate task's apply."""
    if isinstance(evaluation_of, EvaluationRef):
        model_id = evaluation_of.model_id
        evaluation = parse(evaluation_of.read(lake), EvaluationV1, evaluation_of.key)
    else:
        model_id = evaluation_of
        evaluation = registry.read_evaluation(lake, model_id)
    card = registry.read_card(lake, model_id)
    rules = rules or GateRules.for_task(card.task)
    decision = decide(model_id, evaluation.candidate.model_dump(), card.onnx_validation.model_dump(),
                      rules, evaluation.production_id,
                      evaluation.production.model_dump() if evaluation.production else None)
    write_decision(lake, decision)
    return decision


def exact_leaks(images: list[bytes], others: dict[str, list[bytes]]) -> dict[str, int]:
    """Set name -> how many of `images` it holds byte for byte (whatever ids either side uses)."""
    import hashlib

    def digests(imgs: list[bytes]) -> set[str]:
        return {hashlib.sha256(b).hexdigest() for b in imgs}

    mine = digests(images)
    counts = {name: len(mine & digests(imgs)) for name, imgs in others.items()}
    return {n: c for n, c in sorted(counts.items()) if c}
