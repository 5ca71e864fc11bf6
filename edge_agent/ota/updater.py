"""The device updater: python-tuf's `ngclient.Updater` over the lake, then a slot swap that never
leaves the device without a working model.

    check()   refresh TUF metadata -> read the signed channel.json -> pick this device's release
              (cohort) -> download its files (resumable) -> copy into the INACTIVE slot ->
              golden-input validation there -> activate_slot (atomic) -> probation
    record_frame(latency_ms) / record_crash()   what the agent observes during probation
    probation: after `probation_frames` frames: commit, or roll back on a crash, a latency breach
              or a golden mismatch on the active slot

Every step is persisted first (state.py). On restart `recover()` resumes or rolls back:
downloading/verified -> the next check continues (partial downloads resume, verified files are not
fetched again); swapping -> the staged slot is re-validated and activated; probing -> the restart
counts as a crash in probation (a SIGKILL there is indistinguishable from the new model crashing).
The running model is never touched until the new one has passed validation in its own slot, and
the previous slot is never written while the new one is on probation, so rollback is one pointer.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.contract.release import CHANNEL_TARGET, ReleaseRef, assigned, parse_release_channel
from edge_agent.contract.schemas import OtaStateV2
from edge_agent.lake import Lake
from edge_agent.model import activate_slot, resolve_slot
from edge_agent.ota.fetcher import LakeFetcher, channel_updater
from edge_agent.ota.slots import (
    OtaError,
    ValidationFailed,
    golden_check,
    inactive_slot,
    slot_files,
    stage_into,
)
from edge_agent.ota.state import load_record, save_record


@dataclass
class OtaConfig:
    device_id: str
    channel: str
    model_dir: Path  # the agent's model dir (slots/a, slots/b, active)
    state_dir: Path  # TUF metadata cache, partial downloads, staging, ota.json
    trusted_root: bytes  # the channel's root.json provisioned at the factory (trust anchor)
    probation_frames: int = 50  # frames on the new model before committing it
    max_probe_crashes: int = 0  # crashes tolerated in probation
    max_probe_p99_ms: float = 250.0  # inference p99 over the probation frames
    golden_atol: float = 1e-3  # max |output - expected| on the golden inputs
    golden_min_top1: float = 1.0  # share of golden inputs whose argmax must match
    rules_file: Path | None = None  # the agent's watched rule file: signed rule sets land here


class OtaUpdater:
    def __init__(self, lake: Lake, config: OtaConfig, *, fetcher: LakeFetcher | None = None) -> None:
        self.lake = lake
        self.cfg = config
        self.state_dir = Path(config.state_dir)
        self.state_path = self.state_dir / "ota.json"
        self.fetcher = fetcher or LakeFetcher(lake, self.state_dir / "partial")
        self.rec = load_record(self.state_path)
        self.shadow: ReleaseRef | None = None  # the release this device runs in shadow, if any
        self.shadow_dir: Path | None = None  # its validated model dir (model.onnx + model.json)
        self.on_state = None  # optional callback(state) after each persisted step (tests, telemetry)
        # The inference thread reports probation frames while housekeeping checks: probation
        # counters are guarded; the check itself never holds the lock during I/O.
        self._probe_lock = threading.Lock()

    # -- public -----------------------------------------------------------------------------------

    def status(self) -> OtaStateV2:
        """The OTA state a status report (V2) carries."""
        rid = self.rec.release_id or self.rec.active_release
        return OtaStateV2(channel=self.cfg.channel, release_id=rid, state=self.rec.state,
                          detail=self.rec.detail[:1000],
                          shadow_release_id=self.shadow.release_id if self.shadow else None)

    def recover(self) -> str:
        """Run once at start-up: finish or undo what a kill interrupted. Returns the state."""
        r = self.rec
        if r.state == "swapping":
            ref = ReleaseRef.model_validate(r.target)
            try:
                self._validate_slot(r.target_slot, self._staging(ref) / "golden.npz")
            except OtaError as e:
                self._reject(f"after restart, staged slot failed validation: {e}", rollback=True)
                return r.state
            self._activate_and_probe()
        elif r.state == "probing":
            r.probe_crashes += 1
            r.detail = "restarted during probation (counted as a crash)"
            self._save()
            self._judge_probation()
        return r.state

    def check(self) -> str:
        """One update check: does nothing while on probation. Returns the state after it."""
        if self.rec.state == "probing":
            with self._probe_lock:
                return self._judge_probation()
        try:
            tuf = self._tuf()
            tuf.refresh()
            channel = self._channel(tuf)
            self._apply_rules(tuf, channel.rule_set)
            want, in_shadow = assigned(channel, self.cfg.device_id)
            self._prepare_shadow(tuf, channel.release if in_shadow else None)
            if want is None or not self._needs(want):
                if self.rec.state == "failed":
                    self.rec.state = "active" if self.rec.active_release else "idle"
                    self.rec.detail = ""
                    self._save()
                return self.rec.state
            return self._install(tuf, want)
        except ValidationFailed as e:
            return self._reject(str(e), rollback=False)
        except OtaError as e:
            return self._fail(str(e))
        except Exception as e:  # TUF's RepositoryError/DownloadError, lake errors, OSError (disk)
            return self._fail(f"{type(e).__name__}: {e}")

    def record_frame(self, latency_ms: float) -> None:
        if self.rec.state != "probing":  # the hot path: one attribute read when not on probation
            return
        with self._probe_lock:
            if self.rec.state != "probing":
                return
            self.rec.probe_frames += 1
            self.rec.probe_latencies_ms.append(float(latency_ms))
            if self.rec.probe_frames % 10 == 0 or self.rec.probe_frames >= self.cfg.probation_frames:
                self._save()

    def record_crash(self, detail: str = "model crashed") -> None:
        with self._probe_lock:
            if self.rec.state == "probing":
                self.rec.probe_crashes += 1
                self.rec.detail = detail
                self._save()

    def probe(self, frames: int | None = None) -> str:
        """Run the active model on the golden inputs as probation frames (for devices or tests
        without a live camera) and judge. Returns the state."""
        from edge_agent.model import DeviceModel

        if self.rec.state != "probing":
            return self.rec.state
        try:
            model = DeviceModel(self.cfg.model_dir)
            img = np.zeros((*model.input_hw, 3), np.uint8)
            for _ in range(frames or self.cfg.probation_frames):
                self.record_frame(model.predict(img).latency_ms)
        except Exception as e:
            self.record_crash(f"probe crashed: {type(e).__name__}: {e}")
        return self._judge_probation()

    # -- steps ------------------------------------------------------------------------------------

    def _tuf(self):
        return channel_updater(self.state_dir, self.cfg.channel, self.fetcher, self.cfg.trusted_root)

    def _channel(self, tuf):
        info = tuf.get_targetinfo(CHANNEL_TARGET)
        if info is None:
            raise OtaError(f"channel {self.cfg.channel}: no {CHANNEL_TARGET} in signed targets")
        path = tuf.download_target(info, str(self.state_dir / "channel.json"))
        return parse_release_channel(Path(path).read_bytes())

    def _needs(self, want: ReleaseRef) -> bool:
        if want.release_id == self.rec.active_release or want.release_id in self.rec.rejected:
            return False
        try:  # the factory model, or a release republished under a new id: nothing to fetch
            current = _slot_version(resolve_slot(self.cfg.model_dir))
        except Exception:
            current = None
        if current == want.model_version:
            self.rec.active_release = want.release_id
            self.rec.state, self.rec.detail = "active", f"already running {want.model_version}"
            self._save()
            return False
        return True

    def _staging(self, ref: ReleaseRef) -> Path:
        return self.state_dir / "staging" / ref.release_id

    def _install(self, tuf, want: ReleaseRef) -> str:
        r = self.rec
        if r.release_id != want.release_id or r.state not in ("downloading", "verified"):
            r.release_id, r.target = want.release_id, want.model_dump(mode="json")
        r.state, r.detail = "downloading", ""
        self._save()
        staging = self._staging(want)
        self._download(tuf, want, staging)
        slot = inactive_slot(self.cfg.model_dir)
        stage_into(self.cfg.model_dir, slot, staging, want.files)
        self._validate_slot(slot, staging / "golden.npz")
        r.state, r.target_slot = "verified", slot
        r.previous_slot = resolve_slot(self.cfg.model_dir).name
        self._save()
        r.state = "swapping"
        self._save()
        return self._activate_and_probe()

    def _download(self, tuf, ref: ReleaseRef, dest: Path) -> None:
        """Every file of `ref` into `dest`, verified by TUF (length + sha256); resumable."""
        from tuf.api.exceptions import LengthOrHashMismatchError

        dest.mkdir(parents=True, exist_ok=True)
        for name, path in ref.files.items():
            info = tuf.get_targetinfo(path)
            if info is None:
                raise OtaError(f"release {ref.release_id}: {path} is not a signed target")
            out = str(dest / name)
            if tuf.find_cached_target(info, out):
                continue  # verified on an earlier attempt (before a restart)
            url = LakeFetcher.url(f"releases/{self.cfg.channel}/targets/"
                                  + _hashed(path, next(iter(info.hashes.values()))))
            try:
                tuf.download_target(info, out)
            except LengthOrHashMismatchError:
                self.fetcher.discard(url)  # never resume from bytes that failed verification
                raise
            self.fetcher.discard(url)

    def _apply_rules(self, tuf, path: str | None) -> None:
        """A signed trigger rule set: verified by TUF, compiled, then atomically replaces the rule
        file the agent watches (a bad one is reported and never replaces the running rules)."""
        from edge_agent.triggers.rules import load_rule_set

        if not path or self.cfg.rules_file is None or path == self.rec.rules_applied:
            return
        info = tuf.get_targetinfo(path)
        if info is None:
            raise OtaError(f"rule set {path} is not a signed target")
        staged = self.state_dir / "rules" / Path(path).name
        staged.parent.mkdir(parents=True, exist_ok=True)
        tuf.download_target(info, str(staged))
        try:
            load_rule_set(staged)
        except ValueError as e:
            self.rec.rules_applied, self.rec.detail = path, f"rule set {path} refused: {e}"
            self._save()
            return
        dest = Path(self.cfg.rules_file)
        tmp = dest.with_name(f".{dest.name}.tmp")
        shutil.copyfile(staged, tmp)
        tmp.replace(dest)
        self.rec.rules_applied = path
        self._save()

    def _prepare_shadow(self, tuf, ref: ReleaseRef | None) -> None:
        """Shadow mode: fetch and validate the candidate beside production (never activated)."""
        if ref is None or ref.release_id in self.rec.rejected:
            self.shadow, self.shadow_dir = None, None
            return
        if self.shadow is not None and self.shadow.release_id == ref.release_id:
            return
        d = self.state_dir / "shadow" / ref.release_id
        self._download(tuf, ref, d)
        try:
            slot_files(d, ref.files)  # a two-stage candidate's detector: signed, hash as named
            self._validate_model(d / "model.onnx", d / "golden.npz", "shadow")
        except ValidationFailed as e:  # never run a candidate that fails its own golden set
            self.rec.rejected.append(ref.release_id)
            self.rec.detail = f"shadow {ref.release_id} refused: {e}"
            self.shadow, self.shadow_dir = None, None
            self._save()
            return
        self.shadow, self.shadow_dir = ref, d

    def _activate_and_probe(self) -> str:
        r = self.rec
        activate_slot(self.cfg.model_dir, r.target_slot)
        r.state, r.detail = "probing", ""
        r.probe_frames, r.probe_crashes, r.probe_latencies_ms = 0, 0, []
        self._save()
        return r.state

    def _judge_probation(self) -> str:
        r, c = self.rec, self.cfg
        if r.probe_crashes > c.max_probe_crashes:
            return self._reject(f"probation: {r.probe_crashes} crash(es) > {c.max_probe_crashes} "
                                f"({r.detail})", rollback=True)
        if r.probe_frames < c.probation_frames:
            return r.state
        p99 = float(np.percentile(r.probe_latencies_ms, 99)) if r.probe_latencies_ms else 0.0
        if p99 > c.max_probe_p99_ms:
            return self._reject(f"probation: inference p99 {p99:.1f} ms > {c.max_probe_p99_ms} ms",
                                rollback=True)
        ref = ReleaseRef.model_validate(r.target)
        try:
            self._validate_slot(r.target_slot, self._staging(ref) / "golden.npz")
        except OtaError as e:
            return self._reject(f"probation: {e}", rollback=True)
        r.state, r.active_release = "active", ref.release_id
        r.detail = f"committed {ref.model_version} after {r.probe_frames} frames, p99 {p99:.1f} ms"
        self._save()
        self._cleanup()
        return r.state

    def _reject(self, reason: str, *, rollback: bool) -> str:
        r = self.rec
        if rollback and r.previous_slot:
            activate_slot(self.cfg.model_dir, r.previous_slot)
        if r.release_id and r.release_id not in r.rejected:
            r.rejected.append(r.release_id)
        r.state = "rolled_back" if rollback else "failed"
        r.detail = reason
        self._save()
        self._cleanup()
        return r.state

    def _fail(self, reason: str) -> str:
        """A check or install step failed before any swap: the running model stands; the release
        in progress (and its partial downloads) is kept, so the next check resumes it."""
        self.rec.state, self.rec.detail = "failed", reason
        self._save()
        return "failed"

    # -- slots ------------------------------------------------------------------------------------

    def _validate_slot(self, slot: str, golden_path: Path) -> None:
        self._validate_model(Path(self.cfg.model_dir) / "slots" / slot / "model.onnx", golden_path,
                             f"slot {slot}")

    def _validate_model(self, path: Path, golden_path: Path, where: str) -> None:
        golden_check(path, golden_path, where, self.cfg.golden_atol, self.cfg.golden_min_top1)

    def _cleanup(self) -> None:
        shutil.rmtree(self.state_dir / "staging", ignore_errors=True)
        self.fetcher.discard_all()

    def _save(self) -> None:
        save_record(self.state_path, self.rec)
        if self.on_state is not None:
            self.on_state(self.rec.state)


def _hashed(path: str, digest: str) -> str:
    folder, sep, name = path.rpartition("/")
    return f"{folder}{sep}{digest}.{name}"


def _slot_version(slot: Path) -> str | None:
    import json

    try:
        return str(json.loads((slot / "model.json").read_text()).get("model_version") or "") or None
    except (OSError, ValueError):
        return None
