"""Assemble an agent and its frame source from an `AgentConfig` (what `edge-agent run` does)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from edge_agent.agent import Agent
from edge_agent.capture.spool import Spool
from edge_agent.config import AgentConfig
from edge_agent.hooks import NO_FAULTS, FaultHooks
from edge_agent.lake import Lake, S3Options, open_lake
from edge_agent.model import DeviceModel, active_stamp
from edge_agent.sources import AvSource, ReconnectingSource
from edge_agent.triggers.rules import RuleSetWatcher

log = logging.getLogger(__name__)


def open_config_lake(cfg: AgentConfig) -> Lake:
    uri = cfg.upload.lake
    if "://" not in uri:
        return Lake.at_path(cfg.path(uri))
    return open_lake(uri, S3Options(endpoint=cfg.upload.endpoint or None))


def model_loader(model_dir: Path, threads: int):
    """A callable for hot swaps: returns a new DeviceModel when the active slot changed, else None."""
    stamp = [active_stamp(model_dir)]

    def load():
        now = active_stamp(model_dir)
        if now == stamp[0]:
            return None
        model = DeviceModel(model_dir, threads=threads)  # raises on a broken slot: old one stays
        stamp[0] = now
        return model

    return load


def build_agent(cfg: AgentConfig, *, lake: Lake | None = None, hooks: FaultHooks = NO_FAULTS) -> Agent:
    model_dir = cfg.path(cfg.model.dir)
    model = DeviceModel(model_dir, threads=cfg.model.threads)
    spool = Spool(cfg.path(cfg.spool.dir), cap_bytes=cfg.spool.cap_bytes,
                  min_free_bytes=cfg.spool.min_free_bytes, policy=cfg.spool.policy)
    watcher = RuleSetWatcher(cfg.rules_file, cfg.rules) if cfg.rules_file else None
    the_lake = lake if lake is not None else open_config_lake(cfg)
    agent = Agent(
        device_id=cfg.device_id, store_id=cfg.store_id, model=model, rules=cfg.rules, spool=spool,
        lake=the_lake,
        capture=cfg.capture, upload=cfg.upload,
        status_interval_s=cfg.telemetry.status_interval_s, rules_watcher=watcher,
        rules_reload_s=cfg.rules_reload_s, model_loader=model_loader(model_dir, cfg.model.threads),
        hooks=hooks, federated=_federated(cfg))
    if cfg.ota.channel:
        from edge_agent.ota.updater import OtaConfig, OtaUpdater

        o = cfg.ota
        agent.ota = OtaUpdater(the_lake, OtaConfig(
            device_id=cfg.device_id, channel=o.channel, model_dir=model_dir,
            state_dir=cfg.path(o.state_dir), trusted_root=cfg.path(o.trusted_root).read_bytes(),
            probation_frames=o.probation_frames, max_probe_p99_ms=o.max_probe_p99_ms,
            rules_file=cfg.rules_file))
        agent.ota_check_s = o.check_s
        agent.ota.recover()  # finish or undo what a kill interrupted, before the first frame
        agent.reload_model()
    return agent


def _federated(cfg: AgentConfig):
    """The [federated] section with its paths resolved against the config file."""
    import dataclasses

    f = cfg.federated
    if not f.channel:
        return f
    return dataclasses.replace(f, trusted_root=str(cfg.path(f.trusted_root)),
                               state_dir=str(cfg.path(f.state_dir)), device_key=str(device_key_path(cfg)))


def device_key_path(cfg: AgentConfig):
    """Where the device's federated key lives: [federated] device_key, else <state_dir>/device.key
    (resolved against the config file)."""
    f = cfg.federated
    return cfg.path(f.device_key) if f.device_key else cfg.path(f.state_dir) / "device.key"


def build_source(cfg: AgentConfig, agent: Agent | None = None) -> ReconnectingSource:
    s = cfg.source
    url = s.url
    if "://" not in url and not url.startswith("/dev/"):
        url = str(cfg.path(url))

    def on_error(cause: str, e: Exception) -> None:
        if agent is not None:
            agent.telemetry.add("source_errors")

    options = {"rtsp_transport": s.rtsp_transport} if s.rtsp_transport and url.startswith("rtsp") else {}
    return ReconnectingSource(
        lambda: AvSource(url, format=s.format or None, fps=s.fps or None, options=options),
        max_reconnects=None if s.max_reconnects < 0 else s.max_reconnects,
        backoff_s=s.reconnect_backoff_s, on_error=on_error,
        reconnect_on_eof="://" in url or url.startswith("/dev/"))


def run_from_config(cfg: AgentConfig, *, max_frames: int | None = None,
                    drain_timeout: float = 0.0, hooks: FaultHooks = NO_FAULTS) -> dict:
    """Run until the source ends, SIGINT/SIGTERM, or max_frames; returns the final counters."""
    agent = build_agent(cfg, hooks=hooks)
    stop = threading.Event()

    def on_signal(signum, _frame) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    source = build_source(cfg, agent)
    agent.start()
    log.info("agent %s started: model %s, rules %s, %d spooled clip(s) recovered", cfg.device_id,
             agent.model.version, agent.rules.version, agent.recovered)
    try:
        agent.run(source, stop=stop, max_frames=max_frames)
    finally:
        source.close()
    return agent.close(drain_timeout=drain_timeout)
