"""The Dagster instance config the make targets and the test support write into $DAGSTER_HOME:
no telemetry, and a run queue whose tag concurrency limits keep the loop's heavy runs apart.

- `depot/day` (set by the landing sensors on every ingest run): one ingest per capture day at a
  time (applyLimitPerUniqueValue), so two ticks never ingest the same day concurrently;
- `flywheel/training` (set on the train_and_evaluate job): one training at a time on the cluster.

A slot is held by every run Dagster still counts as in progress, so a run whose worker died (killed,
out of memory, the machine rebooted) would hold its day's or the training slot for ever and every
later run of that kind would stay QUEUED without a word. Run monitoring releases them: a run that
has not started after START_TIMEOUT_S, or is still running after MAX_RUNTIME_S (the weekly training
takes minutes to an hour), is failed and its slot freed.

    python -m jobs.instance $DAGSTER_HOME      # writes dagster.yaml unless one is there
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

DAY_TAG = "depot/day"
TRAINING_TAG = "flywheel/training"
MAX_CONCURRENT_RUNS = 8
START_TIMEOUT_S = 600  # launched but no worker came up: fail it, free its slot
MAX_RUNTIME_S = 6 * 3600  # still "running" after this: a dead worker holding a slot


def instance_config() -> dict:
    return {
        "telemetry": {"enabled": False},
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {
                "max_concurrent_runs": MAX_CONCURRENT_RUNS,
                "tag_concurrency_limits": [
                    {"key": DAY_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1},
                    {"key": TRAINING_TAG, "limit": 1},
                ],
            },
        },
        "run_monitoring": {"enabled": True, "start_timeout_seconds": START_TIMEOUT_S,
                           "max_runtime_seconds": MAX_RUNTIME_S},
    }


def write_instance_yaml(home: str | Path, overwrite: bool = False) -> Path:
    """$DAGSTER_HOME/dagster.yaml with the run queue; an existing file is kept unless `overwrite`."""
    path = Path(home) / "dagster.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    if overwrite or not path.exists():
        path.write_text(yaml.safe_dump(instance_config(), sort_keys=False))
    return path


if __name__ == "__main__":
    print(write_instance_yaml(sys.argv[1] if len(sys.argv) > 1 else "var/dagster_home"))
