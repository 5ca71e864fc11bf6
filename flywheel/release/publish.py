"""Publishing releases into a channel's TUF repository: the model's files as content-addressed
targets, and the signed `channel.json` that says who runs what.

A release id is `r<targets version>-<model_id>`: unique and increasing per channel, so republishing
an older model (a rollback) is a new, higher release that devices install like any other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from datetime import UTC, datetime

from edge_agent.contract.federated import ROUND_TARGET
from edge_agent.contract.release import (
    CHANNEL_TARGET,
    RELEASE_FILES,
    ReleaseChannelV1,
    ReleaseRef,
    RolloutStage,
    parse_release_channel,
)
from edge_agent.contract.schemas import dump_document
from edge_agent.lake import Lake
from flywheel.release.cohorts import cohort_salt
from flywheel.release.repository import ChannelRepository, RepositoryError

RULES_DIR = "rules"


def release_id(sequence: int, model_id: str) -> str:
    return f"r{sequence:06d}-{model_id}"[:128]


def registry_files(lake: Lake, model_id: str) -> dict[str, bytes]:
    """The files a device slot needs, from the model registry, checked against the card."""
    from flywheel.learner import registry

    card = registry.read_card(lake, model_id)
    stored = {"model.onnx": "model.onnx", "model.json": "device.json", "golden.npz": "golden.npz"}
    detector = registry.read_device_model(lake, model_id).detector
    if detector is not None:  # a two-stage model: its detector ships in the same release
        stored[detector.file] = detector.file
    files = {}
    for name, src in stored.items():  # model.json in a slot is the registry's device card
        data = lake.get(registry.key(model_id, src))
        entry = card.files.get(src)
        if entry and hashlib.sha256(data).hexdigest() != entry.sha256:
            raise RepositoryError(f"model {model_id}: {src} does not match the sha256 in its card")
        files[name] = data
    return files


def read_target(repo: ChannelRepository, path: str) -> bytes | None:
    """A published target's bytes, checked against the signed targets metadata."""
    info = repo.targets.signed.targets.get(path) if repo.targets else None
    if info is None:
        return None
    data = repo.lake.get(repo.target_key(path, info.hashes["sha256"]))
    info.verify_length_and_hashes(data)
    return data


def current_channel(repo: ChannelRepository) -> ReleaseChannelV1 | None:
    data = read_target(repo, CHANNEL_TARGET)
    return parse_release_channel(data) if data else None


def publish_release(repo: ChannelRepository, model_id: str, files: dict[str, bytes],
                    rollout: RolloutStage, *, previous: ReleaseRef | None = None,
                    keep_previous: bool = True, fleet: Collection[str] = (),
                    split_at: float | None = None) -> ReleaseChannelV1:
    """Publish `files` (RELEASE_FILES, and a two-stage model's detector) as a new release with
    `rollout`: every file is a signed target. `previous` defaults to what the channel currently
    ships in full (what devices outside the cohort keep running). `fleet`: the device ids known to
    report; when the plain cohort point puts none or all of them in a stage of `split_at` percent
    (default: this stage's; the canary's when the release starts in shadow), the release gets a
    cohort salt that splits them (flywheel.release.cohorts)."""
    missing = [n for n in RELEASE_FILES if n not in files]
    if missing:
        raise RepositoryError(f"release of {model_id}: missing {missing}")
    card = json.loads(files["model.json"])
    version = str(card.get("model_version") or "")
    if not version:
        raise RepositoryError(f"release of {model_id}: model.json has no model_version")
    wanted = set(RELEASE_FILES)
    if card.get("detector"):  # the slot's detector: signed with the rest, or no release at all
        name = str(card["detector"].get("file", ""))
        if name not in files or hashlib.sha256(files[name]).hexdigest() != card["detector"].get("sha256"):
            raise RepositoryError(f"release of {model_id}: model.json names detector {name!r}, "
                                  "missing from the files or with another sha256")
        wanted.add(name)
    extra = sorted(set(files) - wanted)
    if extra:
        raise RepositoryError(f"release of {model_id}: files {extra} belong to no slot")
    old = current_channel(repo)
    if previous is None and keep_previous and old is not None:
        previous = old.release if old.rollout.stage == "full" else old.previous
    seq = repo.targets.signed.version + 1
    rid = release_id(seq, model_id)
    ref = ReleaseRef(release_id=rid, model_id=model_id, model_version=version,
                     files={n: f"{rid}/{n}" for n in sorted(files)})
    if fleet:  # a small fleet's canary is never empty by chance (cohorts.py)
        split = rollout.percent if split_at is None else split_at
        rollout = rollout.model_copy(update={"cohort_salt": cohort_salt(fleet, rid, split)})
    channel = ReleaseChannelV1(channel=repo.channel, sequence=seq, published_at=datetime.now(UTC),
                               release=ref, previous=previous, rollout=rollout,
                               rule_set=old.rule_set if old else None)
    targets = {ref.files[n]: files[n] for n in files}
    targets[CHANNEL_TARGET] = dump_document(channel)
    repo.publish(targets, remove=_stale(repo, channel))
    return channel


def set_rollout(repo: ChannelRepository, rollout: RolloutStage,
                previous: ReleaseRef | None = None) -> ReleaseChannelV1:
    """Move the current release to another stage (same artifacts, new signed channel.json); the
    release's cohort salt stays, so the devices of a stage stay in the next, larger one."""
    old = current_channel(repo)
    if old is None:
        raise RepositoryError(f"channel {repo.channel!r} has no release to roll out")
    rollout = rollout.model_copy(update={"cohort_salt": old.rollout.cohort_salt})
    seq = repo.targets.signed.version + 1
    channel = old.model_copy(update={"sequence": seq, "published_at": datetime.now(UTC),
                                     "rollout": rollout,
                                     "previous": previous if previous is not None else old.previous})
    repo.publish({CHANNEL_TARGET: dump_document(channel)}, remove=_stale(repo, channel))
    return channel


def publish_rules(repo: ChannelRepository, version: str, rules: bytes) -> ReleaseChannelV1:
    """Ship a trigger rule set (TOML, the device's rule file format; e.g. a campaign for one SKU)
    as a signed target. It is compiled here first: a rule that does not parse never ships."""
    import tempfile
    from pathlib import Path

    from edge_agent.triggers.rules import load_rule_set

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "rules.toml").write_bytes(rules)
        try:
            compiled = load_rule_set(Path(tmp) / "rules.toml")
        except ValueError as e:
            raise RepositoryError(f"rule set {version}: {e}") from None
    if compiled.version != version:
        raise RepositoryError(f"rule set file says version {compiled.version!r}, not {version!r}")
    old = current_channel(repo)
    if old is None:
        raise RepositoryError(f"channel {repo.channel!r} has no release yet; publish a model first")
    path = f"{RULES_DIR}/{version}.toml"
    seq = repo.targets.signed.version + 1
    channel = old.model_copy(update={"sequence": seq, "published_at": datetime.now(UTC),
                                     "rule_set": path})
    repo.publish({path: rules, CHANNEL_TARGET: dump_document(channel)}, remove=_stale(repo, channel))
    return channel


def _stale(repo: ChannelRepository, channel: ReleaseChannelV1) -> list[str]:
    """Targets no longer referenced (older releases): dropped from metadata, bytes kept in the lake.
    The federated round announcement stays: a round may be open while a release publishes."""
    keep = {CHANNEL_TARGET, ROUND_TARGET, *channel.release.files.values()}
    if channel.previous is not None:
        keep.update(channel.previous.files.values())
    if channel.rule_set:
        keep.add(channel.rule_set)
    return [p for p in repo.targets.signed.targets if p not in keep]


def rollback_release(repo: ChannelRepository) -> ReleaseChannelV1:
    """Republish the last good release (the channel's `previous`) as a new, higher release to every
    device: devices follow versions that only go up, so a rollback is a release like any other."""
    old = current_channel(repo)
    if old is None or old.previous is None:
        raise RepositoryError(f"channel {repo.channel!r}: no previous good release to roll back to")
    good = old.previous
    files = {n: read_target(repo, p) for n, p in good.files.items()}  # a detector too, if any
    if any(v is None for v in files.values()):
        raise RepositoryError(f"channel {repo.channel!r}: files of {good.release_id} are gone")
    return publish_release(repo, good.model_id, files, RolloutStage(stage="full", percent=100.0),
                           keep_previous=False)
