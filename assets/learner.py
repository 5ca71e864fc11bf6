"""Learner assets: simulator imports -> dataset version -> candidate model (trained on Ray) ->
evaluation on the frozen standard sets, gated by a blocking check. Thin: the work is in
`flywheel.learner`; these wire resources, config and metadata for the UI."""

import functools
from collections.abc import Iterator
from typing import Literal

import dagster as dg
from dagster_ray import RayResource
from pydantic import Field

from flywheel.defaults import default_of
from flywheel.imports.sources import load_sources
from flywheel.learner.config import DatasetSpec, GateRules, RoiConfig, SplitRule, TrainConfig
from flywheel.learner.pipeline import SimSources, choose_sets
from flywheel.refs import DatasetRef, EvaluationRef, LabelsRef, ModelRef
from resources.lake import LakeResource
from resources.ray import task_resources

GROUP = "learner"
SIM_STORES = ("A", "B", "C")  # the simulator world's default stores: one frozen set each
STANDARD_SETS = ("manual", *(f"store_{s}" for s in SIM_STORES))
INSERTION_SETS = tuple(f"insertions_store_{s}" for s in SIM_STORES)  # whole insertions, per store
FROZEN_ASSETS = {**{n: f"standard_set_{n}" for n in STANDARD_SETS},
                 **{n: f"insertion_set_{n.removeprefix('insertions_')}" for n in INSERTION_SETS}}
GATE_RULES = GateRules()  # ONNX agreement limits used at training; the gate uses for_task(task)


# Config defaults come from the domain (flywheel.defaults.default_of): one source for each number.
class SourcesConfig(dg.Config):
    # "simulator": import the simulator's catalog, bootstrap and frozen sets (the demo);
    # "imported": train on what `flywheel catalog import` / `flywheel import` put in the depot
    source: Literal["simulator", "imported"] = default_of(load_sources, "source")
    seed: int = default_of(SimSources, "seed")  # simulator world + dataset seed
    n_per_sku: int = default_of(SimSources, "n_per_sku")  # bootstrap frames per core SKU
    n_test: int = default_of(SimSources, "n_test")  # frames per frozen standard test set
    # whole insertions (approach..drop) per frozen insertion set
    n_insertions: int = Field(default_of(SimSources, "n_insertions"), ge=1)


@dg.multi_asset(
    group_name=GROUP,
    specs=[
        dg.AssetSpec("sku_catalog", group_name=GROUP,
                     description="The product catalog (EAN-13 SKUs) labels are checked against; "
                                 "depot/catalog/<sha>.json."),
        dg.AssetSpec("manual_collection", group_name=GROUP,
                     description="Bootstrap labelled frames from the lab (simulator's manual "
                                 "distribution), depot/manual_collection/<sha>.parquet."),
        *[dg.AssetSpec(f"standard_set_{n}", group_name=GROUP,
                       description=f"Frozen standard test set '{n}' (content-hashed; once imported "
                                   "never replaced; training never reads it).")
          for n in STANDARD_SETS],
        *[dg.AssetSpec(FROZEN_ASSETS[n], group_name=GROUP,
                       description=f"Frozen insertion-level test set '{n}': every frame of whole "
                                   "insertions, for the per-item decision (barcode + vote) the cart "
                                   "makes; depot/insertion_sets/, never read by training.")
          for n in INSERTION_SETS],
    ],
    check_specs=[dg.AssetCheckSpec("frozen", asset=a,
                                   description="the generator still yields the frozen bytes")
                 for a in FROZEN_ASSETS.values()],
)
def learner_sources(context: dg.AssetExecutionContext, config: SourcesConfig, lake: LakeResource):
    imported = load_sources(lake.lake(), config.source,
                            SimSources(config.seed, config.n_per_sku, config.n_test,
                                       config.n_insertions))
    names = {"catalog": "sku_catalog", "manual_collection": "manual_collection", **FROZEN_ASSETS}
    user_sets = {n: imp.sha256[:16] for n, imp in imported.items()
                 if n not in ("catalog", "manual_collection")}
    for name, asset_key in names.items():
        imp = imported.get(name)
        if imp is None:  # imported data need not have the simulator's set names
            yield dg.MaterializeResult(
                asset_key=asset_key, metadata={"present": False, "rows": 0, "source": config.source},
                check_results=[dg.AssetCheckResult(
                    check_name="frozen", asset_key=asset_key, passed=True,
                    metadata={"actual": "absent", "threshold": "absent"})])
            continue
        if imp.drift_sha256:
            context.log.warning(f"{asset_key}: the generator now yields {imp.drift_sha256[:16]}, the "
                                f"frozen version {imp.sha256[:16]} is kept")
        checks = []
        if name in FROZEN_ASSETS:
            # drift keeps the recorded version (models stay comparable) but someone should look
            checks.append(dg.AssetCheckResult(
                check_name="frozen", asset_key=asset_key, passed=not imp.drift_sha256,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"actual": (imp.drift_sha256 or imp.sha256)[:16],
                          "threshold": imp.sha256[:16]}))
        yield dg.MaterializeResult(
            asset_key=asset_key, data_version=dg.DataVersion(imp.sha256[:16]),
            metadata={"key": imp.key, "sha256": imp.sha256, "rows": imp.rows, "source": config.source,
                      "newly_written": imp.created, "generator_drift": bool(imp.drift_sha256),
                      **({"standard_sets": user_sets} if name == "manual_collection" else {})},
            check_results=checks)


class DatasetConfig(dg.Config):
    task: Literal["classify", "detect"] = default_of(DatasetSpec, "task")
    split_by: Literal["session_id", "device_id"] = default_of(SplitRule, "by")  # never split a session
    val_fraction: float = default_of(SplitRule, "val_fraction")  # share of groups in validation
    include_empty: bool = default_of(DatasetSpec, "include_empty")  # empty frames as "empty" (classify)


@dg.asset(
    group_name=GROUP, io_manager_key="ref_io_manager",
    # every capture day's merged labels (Label stage); days never merged are left out
    ins={"merged_labels": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
    deps=["manual_collection", "sku_catalog", *FROZEN_ASSETS.values()],
    check_specs=[dg.AssetCheckSpec(
        "val_class_coverage", asset="dataset_version",
        description="every class found in two or more sessions has validation frames (a class seen "
                    "in one session only cannot be on both sides without leakage)"),
                 dg.AssetCheckSpec(
        "train_class_coverage", asset="dataset_version",
        description="every class has training frames (when every group holds a class of its own, "
                    "the group forced into validation takes its classes out of training)")],
    description="Content-addressed dataset version datasets/<version>/ (manifest + Parquet shards): "
                "id = hash(member ids, labels, split rule); split by session; validated (empty, "
                "single class, unknown SKUs, frozen-set frames) before anything is written.")
def dataset_version(context: dg.AssetExecutionContext, config: DatasetConfig, lake: LakeResource,
                    merged_labels: dict[str, LabelsRef]
                    ) -> Iterator[dg.Output[DatasetRef] | dg.AssetCheckResult]:
    from flywheel.learner.pipeline import build_dataset, dataset_ref, labelled_sources
    from flywheel.learner.plots import class_balance_png, png_markdown

    spec = DatasetSpec(task=config.task, include_empty=config.include_empty,
                       split=SplitRule(by=config.split_by, val_fraction=config.val_fraction))
    labels = labelled_sources(lake.lake(), merged_labels)
    ds, created = build_dataset(lake.lake(), spec, labels)
    m = ds.manifest
    balance = m["class_balance"]
    n_classes = len(m["classes"])
    single = set(balance["classes_in_one_group"])
    uncovered = [c for c in balance["classes_missing_in_val"] if c not in single]
    yield dg.Output(
        dataset_ref(lake.lake(), ds), data_version=dg.DataVersion(ds.version),
        metadata={
            "version": ds.version, "newly_written": created, "manifest": f"{ds.prefix}/manifest.json",
            "label_days": sorted(d for d, r in merged_labels.items() if r.rows),
            "label_frames": sum(r.rows for r in merged_labels.values()),
            "members": m["counts"]["members"], "train": m["counts"]["train"], "val": m["counts"]["val"],
            "groups": m["counts"]["groups"], "classes": n_classes, "rejects": m["counts"]["rejects"],
            "imbalance_ratio": balance["imbalance_ratio"],
            "classes_missing_in_val": balance["classes_missing_in_val"],
            "class_balance": dg.MetadataValue.md(
                png_markdown(class_balance_png(balance["per_class"]), "class balance")),
        })
    yield dg.AssetCheckResult(
        check_name="val_class_coverage", passed=not uncovered, severity=dg.AssetCheckSeverity.WARN,
        metadata={"actual": len(uncovered), "threshold": 0,
                  "val_class_share": (n_classes - len(balance["classes_missing_in_val"]))
                  / max(n_classes, 1),
                  "missing": balance["classes_missing_in_val"], "in_one_group": sorted(single)})
    untrained = balance["classes_missing_in_train"]
    yield dg.AssetCheckResult(
        check_name="train_class_coverage", passed=not untrained, severity=dg.AssetCheckSeverity.WARN,
        metadata={"actual": len(untrained), "threshold": 0, "missing": untrained})


class TrainingConfig(dg.Config):
    task: Literal["classify", "detect"] = default_of(TrainConfig, "task")
    model_yaml: str = ""  # empty: the task's default (TrainConfig.for_task), built from yaml
    imgsz: int = 0  # 0: the task's default (TrainConfig.for_task)
    epochs: int = default_of(TrainConfig, "epochs")
    batch: int = default_of(TrainConfig, "batch")
    seed: int = default_of(TrainConfig, "seed")
    num_cpus: int = default_of(TrainConfig, "num_cpus")  # CPUs the Ray training task reserves
    # "parent": fine-tune from the production model when there is one (head grown by class name)
    init: Literal["scratch", "parent"] = default_of(TrainConfig, "init")
    balance: float = default_of(TrainConfig, "balance")  # repeat rare classes' frames; 0 = off
    # store light colour removed before the model sees a frame (edge_agent/whitebalance.py)
    white_balance: Literal["none", "gray_world", "gray_world_exposure"] = default_of(
        TrainConfig, "white_balance")
    # the two-stage model: item detector + crop classifier (RoiConfig's settings; classify only);
    # false: one classifier on the whole frame at imgsz
    two_stage: bool = default_of(TrainConfig, "roi") is not None
    det_epochs: int = default_of(RoiConfig, "det_epochs")  # two-stage: the detector's, from scratch
    # wall seconds by which every training of the run ends its last epoch (the turn's 10 minutes);
    # None: the configured epochs whatever they take
    time_budget_s: float | None = default_of(TrainConfig, "time_budget_s")
    # classifier training precision: "auto" = bfloat16 autocast where the CPU has it natively
    # (2.1x faster epochs here), "fp32" as before; detection always trains in fp32
    precision: Literal["auto", "fp32", "bf16"] = default_of(TrainConfig, "precision")

    def train_config(self) -> TrainConfig:
        overrides = {"epochs": self.epochs, "batch": self.batch, "seed": self.seed,
                     "num_cpus": self.num_cpus, "init": self.init, "balance": self.balance,
                     "time_budget_s": self.time_budget_s}
        if self.task == "classify":  # detection trains on the frames as they are, in fp32
            overrides["white_balance"] = self.white_balance
            overrides["precision"] = self.precision
        if self.model_yaml:
            overrides["model_yaml"] = self.model_yaml
        if self.imgsz:
            overrides["imgsz"] = self.imgsz
        # detector + crop classifier (the default), or one classifier on the whole frame
        overrides["roi"] = (RoiConfig(det_epochs=self.det_epochs)
                            if self.task == "classify" and self.two_stage else None)
        return TrainConfig.for_task(self.task, **overrides)


@dg.asset(
    group_name=GROUP, io_manager_key="ref_io_manager",
    description="A candidate model trained on this run's dataset version as a Ray task (dagster-ray), "
                "registered at models/<model_id>/ with weights, validated ONNX, golden inputs, card "
                "(classes, preprocessing, lineage).")
def candidate_model(context: dg.AssetExecutionContext, config: TrainingConfig, lake: LakeResource,
                    ray: RayResource, dataset_version: DatasetRef) -> dg.Output[ModelRef]:
    from flywheel.learner.pipeline import model_ref, train_candidate
    from flywheel.learner.plots import png_markdown, training_curves_png
    from flywheel.learner.train import train_on_ray

    pinned = task_resources(ray)  # the cluster's training nodes; None: any node
    result = train_candidate(lake.lake(), config.train_config(), GATE_RULES, dataset_version,
                             runner=functools.partial(train_on_ray, resources=pinned))
    final = result.curves[-1] if result.curves else {}
    epochs = max(len(result.curves), 1)
    return dg.Output(
        model_ref(lake.lake(), result.model_id), data_version=dg.DataVersion(result.model_id),
        metadata={
            "model_id": result.model_id, "dataset_version": result.dataset_version,
            "ran_on": result.where, "ray_cluster": ray.display_name,
            "ray_task_resources": dg.MetadataValue.json(pinned or {}),
            "classes": len(result.classes), "n_train": result.n_train, "n_val": result.n_val,
            "epochs": len(result.curves), "seconds_train": round(result.seconds_train, 2),
            "seconds_per_epoch_per_1000_images": round(
                result.seconds_train / epochs / max(result.n_train, 1) * 1000, 3),
            "val_top1": final.get("metrics/accuracy_top1"),
            "onnx_max_abs_diff": result.onnx_validation.get("max_abs_diff"),
            "onnx_agrees": result.onnx_validation.get("passed"),
            "card": f"models/{result.model_id}/model.json",
            # detector + crop classifier (TrainConfig.roi): seconds_train counts both trainings
            "two_stage": "two_stage" in result.card.preprocessing,
            "parent_model": result.card.lineage.parent_model or "none",
            "init": result.card.training.get("init", {}).get("mode", "scratch"),
            "init_detail": dg.MetadataValue.json(result.card.training.get("init", {})),
            "code_version": result.card.lineage.code_version,
            "training_curves": dg.MetadataValue.md(
                png_markdown(training_curves_png(result.curves), "training curves")),
        },
    )


class EvaluationConfig(dg.Config):
    # standard sets pooled into the gate's target metric; none: every set but the reference one
    gate_sets: list[str] | None = default_of(choose_sets, "gate_sets")
    reference_set: str = default_of(choose_sets, "reference_set")  # reported (manual_*), never gated


@dg.asset(
    group_name=GROUP, io_manager_key="ref_io_manager",
    description="This run's candidate and the production model on every frozen standard set with ONNX "
                "Runtime: top-1, per-SKU, per-slice accuracy, ECE, CPU latency; report.md compares.")
def candidate_evaluation(context: dg.AssetExecutionContext, config: EvaluationConfig, lake: LakeResource,
                         candidate_model: ModelRef) -> dg.Output[EvaluationRef]:
    from flywheel.learner.pipeline import evaluate_candidate, evaluation_ref
    from flywheel.learner.plots import png_markdown, slices_png

    ev = evaluate_candidate(lake.lake(), candidate_model, config.gate_sets, config.reference_set)
    cand = ev.candidate
    metrics = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in cand.metrics.items()}
    prod_slices = ev.production.slices if ev.production else None
    return dg.Output(
        evaluation_ref(lake.lake(), ev.candidate_id), data_version=dg.DataVersion(ev.candidate_id),
        metadata={
            "candidate": ev.candidate_id, "production": ev.production_id or "none",
            # production's figures from its own evaluation (same clean code and sets), not re-measured
            "production_reused": ev.production_reused,
            **metrics,
            "test_set_versions": {k: v[:16] for k, v in ev.test_set_versions.items()},
            "gate_sets": ev.gate_sets,
            "report": dg.MetadataValue.md(ev.report_md),
            "slices": dg.MetadataValue.md(png_markdown(slices_png(cand.slices, prod_slices),
                                                       "slices")),
        },
    )


@dg.asset_check(asset="candidate_evaluation", blocking=True,
                description="The release gate: target metric improves by >= delta, no slice regresses "
                            "by > epsilon, ONNX latency within budget, ONNX agrees with torch.")
def release_gate(context: dg.AssetCheckExecutionContext, lake: LakeResource,
                 candidate_evaluation: EvaluationRef) -> dg.AssetCheckResult:
    return gate_check(lake, candidate_evaluation)


def gate_check(lake: LakeResource, evaluation: EvaluationRef) -> dg.AssetCheckResult:
    """The blocking gate check of any candidate's evaluation (trained or federated)."""
    from flywheel.learner.pipeline import gate_candidate

    # the evaluation this run produced (GateRules.for_task of the candidate's task)
    decision = gate_candidate(lake.lake(), evaluation)
    metadata = {**decision.check_metadata(), "decision": dg.MetadataValue.md(decision.markdown())}
    return dg.AssetCheckResult(passed=decision.passed, severity=dg.AssetCheckSeverity.ERROR,
                               metadata=metadata,
                               description=("passed" if decision.passed else
                                            "BLOCKED: " + "; ".join(decision.reasons)))
