"""One source for every default: each Dagster Config field equals the domain default it stands for,
and the agent's capture/upload settings are its config objects (no second set of defaults)."""

from __future__ import annotations

import dataclasses

import pytest

from flywheel.defaults import default_of


def _dagster_default(config_cls, name: str):
    return config_cls.model_fields[name].get_default(call_default_factory=True)


def _pairs():
    from assets.depot import FleetConfig, IngestConfig
    from assets.learner import DatasetConfig, EvaluationConfig, SourcesConfig, TrainingConfig
    from flywheel.depot.config import DepotConfig
    from flywheel.depot.fleet_rollup import rollup_day
    from flywheel.imports.sources import load_sources
    from flywheel.learner.config import DatasetSpec, RoiConfig, SplitRule, TrainConfig
    from flywheel.learner.pipeline import SimSources, choose_sets

    return [
        (SourcesConfig, "source", load_sources, "source"),
        (EvaluationConfig, "gate_sets", choose_sets, "gate_sets"),
        (EvaluationConfig, "reference_set", choose_sets, "reference_set"),
        (SourcesConfig, "seed", SimSources, "seed"),
        (SourcesConfig, "n_per_sku", SimSources, "n_per_sku"),
        (SourcesConfig, "n_test", SimSources, "n_test"),
        (SourcesConfig, "n_insertions", SimSources, "n_insertions"),
        (DatasetConfig, "task", DatasetSpec, "task"),
        (DatasetConfig, "include_empty", DatasetSpec, "include_empty"),
        (DatasetConfig, "split_by", SplitRule, "by"),
        (DatasetConfig, "val_fraction", SplitRule, "val_fraction"),
        (TrainingConfig, "task", TrainConfig, "task"),
        (TrainingConfig, "epochs", TrainConfig, "epochs"),
        (TrainingConfig, "batch", TrainConfig, "batch"),
        (TrainingConfig, "white_balance", TrainConfig, "white_balance"),
        (TrainingConfig, "seed", TrainConfig, "seed"),
        (TrainingConfig, "num_cpus", TrainConfig, "num_cpus"),
        (TrainingConfig, "init", TrainConfig, "init"),
        (TrainingConfig, "balance", TrainConfig, "balance"),
        (TrainingConfig, "time_budget_s", TrainConfig, "time_budget_s"),
        (TrainingConfig, "precision", TrainConfig, "precision"),
        (TrainingConfig, "det_epochs", RoiConfig, "det_epochs"),
        (IngestConfig, "frame_every", DepotConfig, "frame_every"),
        (IngestConfig, "pending_timeout_s", DepotConfig, "pending_timeout_s"),
        (FleetConfig, "silence_s", rollup_day, "silence_s"),
        (FleetConfig, "max_drop_rate", rollup_day, "max_drop_rate"),
    ]


N_PAIRS = 26  # len(_pairs()), kept literal so collection does not import the assets


def test_every_pair_is_checked() -> None:
    assert len(_pairs()) == N_PAIRS  # a range that fell behind left the last pairs unchecked


@pytest.mark.parametrize("index", range(N_PAIRS))
def test_dagster_config_defaults_equal_domain_defaults(index: int) -> None:
    cfg, name, domain, domain_name = _pairs()[index]
    assert _dagster_default(cfg, name) == default_of(domain, domain_name), f"{cfg.__name__}.{name}"


def test_every_dagster_config_field_is_covered() -> None:
    """A new Config field needs a domain default (and a line above), or an explicit exemption."""
    from assets.depot import FleetConfig, IngestConfig
    from assets.learner import DatasetConfig, EvaluationConfig, SourcesConfig, TrainingConfig

    exempt = {("DatasetConfig", "extra_sources"),  # a run input, not a setting: empty by default
              ("IngestConfig", "max_clip_mb"),  # DepotConfig.max_clip_bytes in MiB (checked below)
              ("IngestConfig", "replay_samples"),  # UI only: contact sheets on the materialization
              ("TrainingConfig", "two_stage"),  # TrainConfig.roi is set (checked below)
              ("TrainingConfig", "model_yaml"), ("TrainingConfig", "imgsz")}  # "" / 0: the task's
    covered = {(c.__name__, n) for c, n, _, _ in _pairs()}
    for cfg in (SourcesConfig, DatasetConfig, TrainingConfig, EvaluationConfig, IngestConfig, FleetConfig):
        for name in cfg.model_fields:
            assert (cfg.__name__, name) in covered | exempt, f"{cfg.__name__}.{name} has no domain twin"


def test_derived_defaults_follow_the_domain() -> None:
    from assets.depot import IngestConfig
    from assets.learner import TrainingConfig
    from flywheel.depot.config import DepotConfig
    from flywheel.learner.config import TrainConfig

    assert IngestConfig().depot() == DepotConfig()  # max_clip_mb round-trips to the byte default
    for task in ("classify", "detect"):
        assert TrainingConfig(task=task).train_config() == TrainConfig.for_task(task)
    assert TrainingConfig().two_stage == (TrainConfig().roi is not None)
    assert TrainingConfig(two_stage=True).train_config().roi is not None


def test_the_agent_takes_its_config_objects() -> None:
    """No second set of capture/upload defaults: the agent's settings are CaptureConfig/UploadConfig."""
    import edge_agent.agent as agent_mod
    from edge_agent.config import CaptureConfig

    assert not hasattr(agent_mod, "CaptureSettings") and not hasattr(agent_mod, "UploadSettings")
    import inspect

    params = inspect.signature(agent_mod.Agent).parameters
    assert "CaptureConfig" in str(params["capture"].annotation)
    assert "UploadConfig" in str(params["upload"].annotation)
    assert dataclasses.is_dataclass(CaptureConfig) and CaptureConfig().isolation == "process"
