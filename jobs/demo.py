"""`make demo`: one turn of the loop on the embedded default (local lake, LocalRay, SQLite instance).

Collect (simulated carts through real edge agents; they take released models over the air) ->
Manage (the landing sensor's tick, then the capture-day ingest + index runs) -> Train (the weekly
`train_and_evaluate` job: dataset version, YOLO on Ray, evaluation, blocking gate) -> Deploy (the
release job signs the gated candidate into the TUF channel). Runs land in the persistent
instance at $DAGSTER_HOME, so `make ui` shows them, with lineage and metadata, afterwards.
Stages not built yet are named.

    python -m jobs.demo [--carts 3] [--minutes 1] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
NOT_BUILT = {
    "Label": "empty-frame filter, VLM + teacher pre-labels, human review routing, correction merge",
}


# Runs log to the instance (the UI shows every event); the terminal gets warnings and the summary.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _step(title: str) -> float:
    print(f"\n=== {title}", flush=True)
    return time.perf_counter()


def _done(start: float) -> None:
    print(f"    ({time.perf_counter() - start:.1f} s)", flush=True)


def _print_materializations(result, indent: int, per_asset: int = 6) -> None:
    """The first few plain-number and id fields of each materialization's metadata."""
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        shown = [f"{k}={v.value}" for k, v in mat.metadata.items()
                 if isinstance(v.value, int | float | str) and not isinstance(v.value, bool)
                 and len(str(v.value)) <= 40][:per_asset]
        print(" " * indent + f"{mat.asset_key.to_user_string()}: {', '.join(shown)}")


def _deploy(defs, instance, gate_passed: bool) -> tuple[bool, list[str]]:
    """Deploy: the release job signs the candidate this turn's gate passed into the channel (TUF);
    the carts of the next turn take it over the air. Only the release stage moves production."""
    if not gate_passed:
        return True, ["nothing to release: the gate did not pass this candidate"]
    result = defs.resolve_job_def("release_job").execute_in_process(
        instance=instance, raise_on_error=False, run_config=QUIET)
    lines = []
    for event in result.get_asset_materialization_events():
        md = event.materialization.metadata
        lines.append(f"release {md['release_id'].value}: {md['stage'].value}, previous "
                     f"{md['previous'].value}, production moved: {md['production_moved'].value}")
    for check in result.get_asset_check_evaluations():
        lines.append(f"check release.{check.check_name}: {'PASSED' if check.passed else 'BLOCKED'}")
    lines.append(f"run {result.run_id[:8]}: {'success' if result.success else 'FAILED'}; the next "
                 "`make demo` carts take it over the air (edge_agent.ota, python-tuf)")
    return result.success, lines


def _quiet_known_warnings() -> None:
    import warnings

    # Ray starts its processes with fork+exec after LanceDB ran in this process; exec replaces the
    # child at once, so LanceDB's warning about using its runtime in a forked child does not apply.
    warnings.filterwarnings("ignore", message="lancedb fork support is experimental")


def run_demo(carts: int, minutes: float, epochs: int, seed: int, out: Path) -> int:
    _quiet_known_warnings()
    import dagster as dg

    from flywheel.definitions import build_definitions
    from flywheel.fleet.runner import simulate_fleet
    from flywheel.sim.preview import write_contact_sheet
    from jobs.depot import evaluate_landing

    os.environ.setdefault("DAGSTER_HOME", str(REPO_ROOT / "var" / "dagster_home"))
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():  # no telemetry banner, nothing phoned home
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    instance = dg.DagsterInstance.get()
    defs = build_definitions("local")
    lake_resource = defs.resources["lake"]
    lake = lake_resource.lake()
    out.mkdir(parents=True, exist_ok=True)
    day = datetime.now(UTC).date().isoformat()
    print(f"lake: {lake.uri}\nDagster instance: {os.environ['DAGSTER_HOME']}\nfleet seed: {seed}")

    t = _step("Simulator: what the carts see")
    sheet = write_contact_sheet(out / "sim_preview.png", seed=0)
    print(f"    contact sheet of manual and production frames: {sheet['path']}")
    _done(t)

    t = _step(f"Collect: {carts} simulated cart(s) x {minutes:g} min through real edge agents")
    summary = simulate_fleet(lake, carts=carts, minutes=minutes, seed=seed, day=day,
                             work_dir=out / "fleet")
    for line in summary.lines():
        print("    " + line)
    _done(t)

    t = _step("Manage: landing sensor tick -> capture-day ingest, index and fleet rollup")
    cursor_file = out / "landing_cursor.json"
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor_file.read_text() if cursor_file.exists() else None,
        resources={"lake": lake_resource})
    tick = evaluate_landing(context, lake_resource)
    if tick.dynamic_partitions_requests:
        for request in tick.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    ingest_job = defs.resolve_job_def("depot_ingest_job")
    for request in tick.run_requests or []:
        result = ingest_job.execute_in_process(instance=instance, partition_key=request.partition_key,
                                               tags=request.tags, run_config=QUIET)
        print(f"    ingest run for {request.partition_key}: "
              f"{'success' if result.success else 'FAILED'} (run {result.run_id[:8]})")
        _print_materializations(result, indent=6)
        if not result.success:
            return 1
    if tick.cursor:
        cursor_file.write_text(tick.cursor)
    if not tick.run_requests:
        print("    nothing new landed")
    _done(t)

    t = _step(f"Train: the weekly train_and_evaluate job ({epochs} epoch(s) on LocalRay)")
    train_job = defs.resolve_job_def("train_and_evaluate")
    result = train_job.execute_in_process(
        instance=instance, raise_on_error=False,
        run_config={**QUIET, "ops": {"candidate_model": {"config": {"epochs": epochs}}}})
    _print_materializations(result, indent=4)
    for check in result.get_asset_check_evaluations():
        verdict = "PASSED" if check.passed else "BLOCKED"
        reason = check.metadata.get("reasons")
        print(f"    check {check.asset_key.to_user_string()}.{check.check_name}: {verdict}"
              + (f" - {reason.value}" if reason else ""))
    failed = {e.step_key for e in result.all_events if e.is_step_failure}
    gate_blocked = failed == {"candidate_evaluation_release_gate"}
    print(f"    run {result.run_id[:8]}: " + ("success" if result.success else
          "the gate blocked this candidate: nothing ships" if gate_blocked else "FAILED"))
    _done(t)

    t = _step("Deploy: sign the gated candidate into the release channel (TUF), start its rollout")
    gate = [c for c in result.get_asset_check_evaluations() if c.check_name == "release_gate"]
    released, lines = _deploy(defs, instance, bool(gate and gate[0].passed and result.success))
    for line in lines:
        print("    " + line)
    _done(t)

    print("\n=== Not built yet")
    for stage, what in NOT_BUILT.items():
        print(f"    {stage}: {what}")
    print("\nSee the runs, lineage and metadata: make ui  (http://127.0.0.1:3000)")
    # A blocked gate is the loop working (no regression ships); any other failure is an error.
    return 0 if (result.success and released) or gate_blocked else 1


def main(argv: list[str] | None = None) -> int:
    from flywheel.defaults import default_of
    from flywheel.learner.config import TrainConfig

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--carts", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=1.0, help="simulated minutes per cart")
    parser.add_argument("--epochs", type=int, default=default_of(TrainConfig, "epochs"),
                        help="training epochs (default: TrainConfig's)")
    parser.add_argument("--seed", type=int, default=None,
                        help="fleet seed; default: new each run, so every turn collects new moments")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "var" / "demo",
                        help="where the preview, the fleet's spools and the sensor cursor go")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = int(time.time()) % 1_000_000
    return run_demo(args.carts, args.minutes, args.epochs, args.seed, args.out)


if __name__ == "__main__":
    sys.exit(main())
