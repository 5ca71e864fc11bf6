"""Agent configuration (`agent.toml`): typed sections, validated at start with errors naming the key.

    device_id = "cart-001"
    store_id = "A"
    [source]     url = "/dev/video0" (a file, device or rtsp/http URL), format = "v4l2", fps = 15,
                 rtsp_transport = "tcp" (or "udp"; default: UDP, then TCP)
    [model]      dir = "/var/lib/flywheel/model"   (slots/a|b + active pointer)
    [triggers]   version = "1", file = "rules.toml" (hot reload), [[triggers.rules]] name/when/priority
    [capture]    pre_roll_s, post_roll_s, max_clip_s, queue_size, niceness, encoders
    [spool]      dir, cap_bytes, min_free_bytes, policy = "oldest_first" | "pause"
    [upload]     lake = "s3://bucket/prefix", endpoint, bandwidth_bytes_per_s, windows = ["22:00-06:00"],
                 mode = "clips" | "updates" (privacy: "updates" never uploads a clip)
    [federated]  channel (its signed federated/round.json opens rounds), trusted_root, state_dir,
                 cohort, sample_cap, retry_s, check_s, require_tls, device_key
    [telemetry]  status_interval_s
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.capture.encoder import HARDWARE_ENCODERS
from edge_agent.capture.spool import POLICIES
from edge_agent.capture.worker import ISOLATION_MODES
from edge_agent.contract import ContractError, validate_id
from edge_agent.triggers.dsl import RuleError
from edge_agent.triggers.rules import RuleSet, load_rule_set, rule_set_from_mapping
from edge_agent.upload import UploadWindows

RTSP_TRANSPORTS = ("", "tcp", "udp")


class ConfigError(ValueError):
    """The configuration is unusable; the message names the key and the reason."""


@dataclass
class SourceConfig:
    url: str = ""  # video file, camera device (/dev/video0) or stream URL (rtsp://, http://)
    format: str = ""  # container/device format for PyAV, e.g. "v4l2"; "" = probe
    fps: float = 0.0  # pace file playback at this rate; 0 = as fast as frames decode
    max_reconnects: int = -1  # -1 = reconnect forever when the source dies
    reconnect_backoff_s: float = 0.5  # first reconnect delay; doubles up to 10 s
    # RTSP only: "tcp" carries RTP inside the RTSP connection (through NAT and firewalls, no UDP
    # loss), "udp" asks for separate RTP ports, "" = ffmpeg's default (UDP first, then TCP)
    rtsp_transport: str = ""


@dataclass
class ModelConfig:
    dir: str = ""  # model directory: slots/a|b + `active` pointer, or a slot holding model.onnx
    threads: int = 1  # ONNX Runtime intra-op threads for the primary loop


@dataclass
class CaptureConfig:
    pre_roll_s: float = 1.0  # seconds of frames kept before the first firing
    post_roll_s: float = 1.0  # seconds captured after the last firing
    max_clip_s: float = 10.0  # a capture is closed at this length even if rules keep firing
    queue_size: int = 4  # finished captures waiting for the encoder; full = drop + count
    niceness: int = 10  # OS priority drop of the encoder and uploader threads
    encoders: list[str] = field(default_factory=lambda: list(HARDWARE_ENCODERS))  # probed in order
    encoder_threads: int = 1  # libx264 threads (cores belong to the inference loop first)
    copy_frames: bool = False  # copy frames into the ring (sources that reuse buffers)
    isolation: str = "process"  # encoder in a child "process" (no shared GIL) or a "thread"


@dataclass
class SpoolConfig:
    dir: str = "spool"  # local spool directory
    cap_bytes: int = 2 * 1024**3  # hard cap on spooled clip + sidecar bytes
    min_free_bytes: int = 0  # pause capture when the disk has less free space than this
    policy: str = "oldest_first"  # at the cap: "oldest_first" evicts old clips, "pause" drops new


@dataclass
class UploadConfig:
    lake: str = ""  # file:///path or s3://bucket/prefix
    endpoint: str = ""  # S3 endpoint URL (SeaweedFS, MinIO); "" = AWS or AWS_ENDPOINT_URL
    bandwidth_bytes_per_s: float = 0.0  # token-bucket cap; 0 = unlimited
    burst_bytes: float = 0.0  # bucket size; 0 = a quarter second of the cap
    windows: list[str] = field(default_factory=list)  # UTC "HH:MM-HH:MM"; empty = always
    backoff_base_s: float = 0.2  # first retry delay (full jitter)
    backoff_cap_s: float = 30.0  # longest retry delay
    niceness: int = 10
    # "clips": capture and upload clips (the centralised loop); "updates": images never leave the
    # device (GDPR stores): nothing is captured or uploaded, the device learns locally and sends
    # head updates to the [federated] server; status reports (counters only) still go to the lake
    mode: str = "clips"


UPLOAD_MODES = ("clips", "updates")


@dataclass
class FederatedConfig:
    channel: str = ""  # release channel whose signed round announcements this device joins; "" = off
    trusted_root: str = ""  # that channel's root.json (TUF trust anchor); "" = the [ota] one
    state_dir: str = "federated"  # TUF metadata cache and the last round joined (no replay)
    check_s: float = 30.0  # seconds between announcement checks
    cohort: str = ""  # the cohort the server selects by; "" = the store id
    sample_cap: int = 2000  # auto-labelled samples kept on the device (oldest dropped first)
    retry_s: float = 5.0  # seconds between connection attempts when no round is open
    min_step_g: float = 50.0  # weight step (grams) that confirms an insertion's barcode label
    require_tls: bool = True  # join only rounds whose announcement carries a TLS CA for the link
    # the device's Ed25519 key (signs its joins and updates; the fleet registers the public half):
    # "" = <state_dir>/device.key, made at first start (edge_agent/federated/identity.py)
    device_key: str = ""


@dataclass
class TelemetryConfig:
    status_interval_s: float = 60.0  # seconds between status reports


@dataclass
class UpdateConfig:
    channel: str = ""  # release channel to follow; empty: no over-the-air updates
    trusted_root: str = ""  # the channel's root.json provisioned at the factory (TUF trust anchor)
    state_dir: str = "ota"  # TUF metadata, partial downloads, staging, the persisted OTA state
    check_s: float = 300.0  # seconds between update checks
    probation_frames: int = 300  # live frames on a new model before it is committed
    max_probe_p99_ms: float = 250.0  # inference p99 during probation above this: roll back


@dataclass
class AgentConfig:
    device_id: str
    store_id: str
    source: SourceConfig
    model: ModelConfig
    capture: CaptureConfig
    spool: SpoolConfig
    upload: UploadConfig
    telemetry: TelemetryConfig
    rules: RuleSet
    ota: UpdateConfig = field(default_factory=UpdateConfig)
    federated: FederatedConfig = field(default_factory=FederatedConfig)
    rules_file: Path | None = None  # hot-reloaded rule file, when configured
    rules_reload_s: float = 5.0
    base_dir: Path = Path(".")

    def path(self, p: str) -> Path:
        """Relative paths in the config are relative to the config file."""
        q = Path(p).expanduser()
        return q if q.is_absolute() else self.base_dir / q


_SECTIONS = {"source": SourceConfig, "model": ModelConfig, "capture": CaptureConfig,
             "spool": SpoolConfig, "upload": UploadConfig, "telemetry": TelemetryConfig,
             "ota": UpdateConfig, "federated": FederatedConfig}


def _coerce(section: str, cls: type, doc: Any) -> Any:
    if not isinstance(doc, dict):
        raise ConfigError(f"[{section}] must be a table")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(doc) - set(names))
    if unknown:
        raise ConfigError(f"[{section}] unknown key(s) {unknown}; known: {sorted(names)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for k, v in doc.items():
        want = hints[k]
        if not _type_ok(want, v):
            raise ConfigError(f"{section}.{k}: expected {getattr(want, '__name__', want)}, got {v!r}")
        values[k] = float(v) if want is float else v
    return cls(**values)


def _type_ok(want: Any, v: Any) -> bool:
    """TOML value `v` fits field type `want` (bool is not a number here: `cap_bytes = true` is a typo)."""
    if typing.get_origin(want) is list:  # every list field is a list of strings
        return isinstance(v, list) and all(isinstance(x, str) for x in v)
    if want is float:
        return isinstance(v, int | float) and not isinstance(v, bool)
    if want is int:
        return isinstance(v, int) and not isinstance(v, bool)
    return isinstance(v, want) if isinstance(want, type) else True


def _check(cond: bool, key: str, reason: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: {reason}")


def parse_config(doc: dict[str, Any], base_dir: Path = Path(".")) -> AgentConfig:
    known = {"device_id", "store_id", "triggers", *_SECTIONS}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {unknown}; known: {sorted(known)}")
    ids = {}
    for k in ("device_id", "store_id"):
        try:
            ids[k] = validate_id(doc.get(k), k)
        except ContractError as e:
            raise ConfigError(str(e)) from None
    sec = {name: _coerce(name, cls, doc.get(name, {})) for name, cls in _SECTIONS.items()}
    src, model, cap, spool, up, tel, ota, fed = (sec[n] for n in _SECTIONS)
    _check(up.mode in UPLOAD_MODES, "upload.mode", f"must be one of {list(UPLOAD_MODES)}, got {up.mode!r}")
    if fed.channel:
        try:
            validate_id(fed.channel, "federated.channel")
        except ContractError as e:
            raise ConfigError(str(e)) from None
        if not fed.trusted_root and ota.channel == fed.channel:
            fed.trusted_root = ota.trusted_root  # one trust anchor per channel
        _check(bool(fed.trusted_root), "federated.trusted_root",
               "required with federated.channel (the channel's root.json): rounds are joined only "
               "on a signed announcement")
        _check(fed.check_s > 0, "federated.check_s", "must be positive")
    _check(fed.sample_cap >= 1, "federated.sample_cap", "must be >= 1")
    _check(fed.retry_s > 0, "federated.retry_s", "must be positive")
    if ota.channel:
        try:
            validate_id(ota.channel, "ota.channel")
        except ContractError as e:
            raise ConfigError(str(e)) from None
        _check(bool(ota.trusted_root), "ota.trusted_root", "required with ota.channel (root.json)")
        _check(ota.check_s > 0, "ota.check_s", f"must be positive, got {ota.check_s}")
        _check(ota.probation_frames >= 1, "ota.probation_frames", "must be >= 1")
    _check(bool(src.url), "source.url", "required (a file, device or stream URL)")
    _check(src.fps >= 0, "source.fps", f"must be >= 0, got {src.fps}")
    _check(src.reconnect_backoff_s > 0, "source.reconnect_backoff_s", "must be positive")
    _check(src.rtsp_transport in RTSP_TRANSPORTS, "source.rtsp_transport",
           f"must be one of {list(RTSP_TRANSPORTS)}, got {src.rtsp_transport!r}")
    _check(bool(model.dir), "model.dir", "required (the model slot directory)")
    _check(1 <= model.threads <= 64, "model.threads", f"must be 1..64, got {model.threads}")
    for k in ("pre_roll_s", "post_roll_s"):
        _check(0 <= getattr(cap, k) <= 60, f"capture.{k}", f"must be 0..60 s, got {getattr(cap, k)}")
    _check(0 < cap.max_clip_s <= 300, "capture.max_clip_s", f"must be in (0, 300], got {cap.max_clip_s}")
    _check(1 <= cap.queue_size <= 1000, "capture.queue_size", f"must be 1..1000, got {cap.queue_size}")
    _check(0 <= cap.niceness <= 19, "capture.niceness", f"must be 0..19, got {cap.niceness}")
    _check(1 <= cap.encoder_threads <= 16, "capture.encoder_threads", "must be 1..16")
    _check(cap.isolation in ISOLATION_MODES, "capture.isolation",
           f"must be one of {list(ISOLATION_MODES)}, got {cap.isolation!r}")
    bad = [e for e in cap.encoders if e not in HARDWARE_ENCODERS]
    _check(not bad, "capture.encoders", f"unknown encoder(s) {bad}; known: {list(HARDWARE_ENCODERS)}")
    _check(spool.cap_bytes > 0, "spool.cap_bytes", f"must be positive, got {spool.cap_bytes}")
    _check(spool.min_free_bytes >= 0, "spool.min_free_bytes",
           f"must be >= 0, got {spool.min_free_bytes}")
    _check(spool.policy in POLICIES, "spool.policy", f"must be one of {list(POLICIES)}, got {spool.policy!r}")
    _check(up.lake.startswith(("file://", "s3://")) or (bool(up.lake) and "://" not in up.lake),
           "upload.lake", f"must be file://..., s3://bucket/prefix or a directory, got {up.lake!r}")
    _check(up.bandwidth_bytes_per_s >= 0, "upload.bandwidth_bytes_per_s",
           f"must be >= 0 (0 = unlimited), got {up.bandwidth_bytes_per_s}")
    _check(up.burst_bytes >= 0, "upload.burst_bytes", f"must be >= 0, got {up.burst_bytes}")
    _check(0 < up.backoff_base_s <= up.backoff_cap_s, "upload.backoff_base_s",
           "must be positive and <= backoff_cap_s")
    _check(0 <= up.niceness <= 19, "upload.niceness", f"must be 0..19, got {up.niceness}")
    try:
        UploadWindows.parse(up.windows)
    except ValueError as e:
        raise ConfigError(f"upload.windows: {e}") from None
    _check(tel.status_interval_s > 0, "telemetry.status_interval_s", "must be positive")

    trig = doc.get("triggers")
    _check(isinstance(trig, dict), "triggers", "required: a version and at least one rule")
    rules_file = None
    try:
        if trig.get("file"):
            rules_file = Path(trig["file"]).expanduser()
            rules_file = rules_file if rules_file.is_absolute() else base_dir / rules_file
            rules = load_rule_set(rules_file)
        else:
            rules = rule_set_from_mapping(trig)
    except RuleError as e:
        raise ConfigError(f"triggers: {e}") from None
    except (ValueError, OSError) as e:
        raise ConfigError(f"triggers: {e}") from None
    reload_s = trig.get("reload_s", 5.0)
    _check(isinstance(reload_s, int | float) and reload_s > 0, "triggers.reload_s", "must be positive")
    return AgentConfig(device_id=ids["device_id"], store_id=ids["store_id"], source=src, model=model,
                       capture=cap, spool=spool, upload=up, telemetry=tel, rules=rules, ota=ota,
                       federated=fed,
                       rules_file=rules_file, rules_reload_s=float(reload_s), base_dir=base_dir)


def load_config(path: str | Path) -> AgentConfig:
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return parse_config(doc, path.parent.resolve())
