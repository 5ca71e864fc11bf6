"""`flywheel release ...`: keys, channels, publishing, rollout stages and rule sets.

    flywheel release keygen --keys DIR                     root (offline) + online keys
    flywheel release init --lake URI --channel C --keys DIR     root v1 of a channel (root key)
    flywheel release publish --lake URI --channel C --model-id M [--stage canary --percent 5]
    flywheel release stage --lake URI --channel C --stage full --percent 100
    flywheel release rotate --lake URI --channel C --role timestamp --keys DIR   (root key needed)
    flywheel release timestamp --lake URI --channel C      re-sign freshness
    flywheel release rules --lake URI --channel C --version V --file rules.json
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    rel = sub.add_parser("release", help="TUF-signed releases and staged rollout")
    rsub = rel.add_subparsers(dest="release_command", required=True)

    p = rsub.add_parser("keygen", help="create the root key (keep it offline) and online keys")
    p.add_argument("--keys", required=True, help="directory for <role>.pem (mode 600)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_keygen)

    def channel_cmd(name: str, help_: str, func) -> argparse.ArgumentParser:
        q = rsub.add_parser(name, help=help_)
        q.add_argument("--lake", required=True, help="file:///path, s3://bucket/prefix or a directory")
        q.add_argument("--channel", default="stable")
        q.add_argument("--keys", default=None, help="key directory (default: $FLYWHEEL_RELEASE_KEYS_DIR"
                       " or FLYWHEEL_RELEASE_<ROLE>_KEY)")
        q.set_defaults(func=func)
        return q

    channel_cmd("init", "create a channel's TUF repository (needs the root key)", _init)
    q = channel_cmd("publish", "publish a registered model as a new release", _publish)
    q.add_argument("--model-id", required=True)
    q.add_argument("--stage", default="full",
                   choices=["shadow", "canary", "ramp", "full", "halted", "rolled_back"])
    q.add_argument("--percent", type=float, default=100.0)
    q.add_argument("--shadow-percent", type=float, default=0.0)
    q = channel_cmd("stage", "move the current release to another rollout stage", _stage)
    q.add_argument("--stage", required=True,
                   choices=["shadow", "canary", "ramp", "full", "halted", "rolled_back"])
    q.add_argument("--percent", type=float, required=True)
    q.add_argument("--shadow-percent", type=float, default=0.0)
    q = channel_cmd("rotate", "replace an online (or the root) key; writes the new key", _rotate)
    q.add_argument("--role", required=True, choices=["root", "targets", "snapshot", "timestamp"])
    channel_cmd("timestamp", "re-sign the timestamp (freshness)", _timestamp)
    q = channel_cmd("rules", "publish a trigger rule set as a signed target", _rules)
    q.add_argument("--version", required=True)
    q.add_argument("--file", required=True, help="rule set TOML (the edge agent's rule file format)")


def _repo(args: argparse.Namespace, create: bool = False):
    from edge_agent.lake import open_lake
    from flywheel.release.keys import load_keys
    from flywheel.release.repository import open_channel

    return open_channel(open_lake(args.lake), args.channel, load_keys(args.keys), create=create)


def _keygen(args: argparse.Namespace) -> int:
    from flywheel.release.keys import keygen

    paths = keygen(args.keys, overwrite=args.overwrite)
    for role, path in paths.items():
        print(f"{role:9s} {path}{'   <- move offline; needed only to rotate keys' if role == 'root' else ''}")
    return 0


def _init(args: argparse.Namespace) -> int:
    repo = _repo(args, create=True)
    print(f"channel {repo.channel}: root v{repo.root.signed.version}, "
          f"targets v{repo.targets.signed.version} at {repo.lake.url(repo.meta_prefix)}")
    return 0


def _rollout(args: argparse.Namespace):
    from edge_agent.contract.release import RolloutStage

    return RolloutStage(stage=args.stage, percent=args.percent, shadow_percent=args.shadow_percent)


def _publish(args: argparse.Namespace) -> int:
    from flywheel.depot.fleet_rollup import list_devices
    from flywheel.release.publish import publish_release, registry_files

    repo = _repo(args)
    # the devices that report status: a partial stage's cohort salt splits them as asked (cohorts.py)
    ch = publish_release(repo, args.model_id, registry_files(repo.lake, args.model_id), _rollout(args),
                         fleet=list_devices(repo.lake))
    print(f"published {ch.release.release_id} ({ch.rollout.stage} {ch.rollout.percent:g}%)")
    return 0


def _stage(args: argparse.Namespace) -> int:
    from flywheel.release.publish import set_rollout

    ch = set_rollout(_repo(args), _rollout(args))
    print(f"{ch.release.release_id}: {ch.rollout.stage} {ch.rollout.percent:g}%")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    import os
    import tempfile

    from flywheel.release.keys import KEYS_DIR_ENV, generate_key, load_keys

    folder = args.keys or os.environ.get(KEYS_DIR_ENV)
    if not folder:
        print(f"release rotate: --keys (or {KEYS_DIR_ENV}) must name the key directory to update")
        return 2
    repo = _repo(args)
    with tempfile.TemporaryDirectory() as tmp:
        path = generate_key(tmp, args.role)
        version = repo.rotate(args.role, load_keys(tmp, roles=(args.role,)))
        # The new key replaces the old file only once root v<N> authorising it is published.
        staged = Path(folder) / f"{args.role}.pem.new"
        shutil.copyfile(path, staged)
        staged.replace(Path(folder) / f"{args.role}.pem")
    print(f"rotated {args.role}: root v{version}")
    return 0


def _timestamp(args: argparse.Namespace) -> int:
    print(f"timestamp v{_repo(args).refresh_timestamp()}")
    return 0


def _rules(args: argparse.Namespace) -> int:
    from flywheel.release.publish import publish_rules

    ch = publish_rules(_repo(args), args.version, Path(args.file).read_bytes())
    print(f"rule set {ch.rule_set} published")
    return 0
