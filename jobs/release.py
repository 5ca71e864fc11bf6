"""Release jobs: the health-gate sensor (new status reports -> judge the rollout) and the schedule
that re-signs each channel's timestamp well before it expires."""

import json
from pathlib import Path

import dagster as dg

import assets.release
from assets.release import release, release_rollout
from jobs.learner import train_and_evaluate
from resources.deployments import Deployment, local_lake_root
from resources.lake import LakeResource
from resources.release import EnvReleaseSigner, LocalReleaseSigner, ReleaseSignerResource

rollout_job = dg.define_asset_job(
    "release_rollout_job", selection=dg.AssetSelection.assets(release_rollout),
    description="Judge the current rollout stage on fleet health; advance, hold or roll back.")


def evaluate_status(context: dg.SensorEvaluationContext, lake: LakeResource,
                    min_new_reports: int = 1) -> dg.SensorResult:
    """One tick: list the status reports past each device's cursor (keys sort by time within a
    device only, so one cursor over landing/status/ would miss devices that sort before it) and
    request a rollout judgement when there are new ones; the run key names the cursors, so a tick
    never judges the same data twice."""
    import hashlib

    from flywheel.release.window import new_status_keys

    cursor = json.loads(context.cursor) if context.cursor else {}
    after = cursor.get("after") if isinstance(cursor.get("after"), dict) else {}  # old: one key
    keys, moved = new_status_keys(lake.lake(), after)
    runs = []
    if len(keys) >= min_new_reports:
        digest = hashlib.sha256(json.dumps(moved, sort_keys=True).encode()).hexdigest()[:20]
        runs.append(dg.RunRequest(run_key=f"rollout:{digest}", tags={"release/new_reports": str(len(keys))}))
    return dg.SensorResult(run_requests=runs, cursor=json.dumps({"after": moved}, sort_keys=True))


@dg.sensor(job=rollout_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING,
           description="New device status reports in landing/status/ -> judge the rollout stage "
                       "(advance, hold, or halt and roll back).")
def health_gate_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
    return evaluate_status(context, lake)


@dg.op(description="Re-sign the channel's timestamp (devices refuse an expired one).")
def refresh_channel_timestamp(context: dg.OpExecutionContext, lake: LakeResource,
                              signer: ReleaseSignerResource) -> int:
    from flywheel.release.repository import RepositoryError, open_channel

    try:
        repo = open_channel(lake.lake(), signer.channel, signer.signers(), signer.expiry(), create=False)
    except RepositoryError as e:
        context.log.info(f"nothing to refresh: {e}")
        return 0
    version = repo.refresh_timestamp()
    context.log.info(f"channel {signer.channel}: timestamp v{version}, expires "
                     f"{repo.timestamp.signed.expires.isoformat()}")
    return version


@dg.job(description="Re-sign release timestamps.")
def refresh_timestamps_job():
    refresh_channel_timestamp()


refresh_timestamps = dg.ScheduleDefinition(
    name="refresh_release_timestamps", job=refresh_timestamps_job,
    cron_schedule="17 */4 * * *",  # every 4 h: six chances inside the default 1-day expiry
    execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING)

release_job = dg.define_asset_job(
    "release_job", selection=dg.AssetSelection.assets(release),
    description="Sign the candidate the gate passed into the channel and start its rollout.")


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[train_and_evaluate],
                      request_job=release_job, default_status=dg.DefaultSensorStatus.RUNNING,
                      description="A train_and_evaluate run succeeded: release its candidate (the "
                                  "release asset re-checks the gate on the exact evaluation).")
def release_after_training(context: dg.RunStatusSensorContext):
    run = context.dagster_run
    return dg.RunRequest(run_key=f"release:{run.run_id}", tags={"release/after_run": run.run_id})


def signer_for(deployment: Deployment) -> ReleaseSignerResource:
    """The release stage's own resource: a key directory locally, EnvVar PEM secrets on a cluster
    (the root key never reaches a run there: channels are created offline with the CLI)."""
    import os

    if deployment.name == "cluster":
        return EnvReleaseSigner(targets_key=dg.EnvVar("FLYWHEEL_RELEASE_TARGETS_KEY"),
                                snapshot_key=dg.EnvVar("FLYWHEEL_RELEASE_SNAPSHOT_KEY"),
                                timestamp_key=dg.EnvVar("FLYWHEEL_RELEASE_TIMESTAMP_KEY"))
    # next to the local lake (var/lake -> var/release_keys) unless FLYWHEEL_RELEASE_KEYS_DIR says
    return LocalReleaseSigner(keys_dir=os.environ.get(
        "FLYWHEEL_RELEASE_KEYS_DIR", str(Path(local_lake_root()).parent / "release_keys")))


def defs(deployment: Deployment) -> dg.Definitions:
    """Everything of the Release stage for one deployment (see flywheel/definitions.py)."""
    return dg.Definitions(
        assets=dg.load_assets_from_modules([assets.release]),
        asset_checks=dg.load_asset_checks_from_modules([assets.release]),
        jobs=[release_job, rollout_job, refresh_timestamps_job],
        sensors=[health_gate_sensor, release_after_training], schedules=[refresh_timestamps],
        resources={**deployment.pick("lake", "ref_io_manager"), "signer": signer_for(deployment)})
