"""`edge-agent run --config agent.toml` and `edge-agent status --config agent.toml`."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from edge_agent.config import ConfigError, load_config
from edge_agent.hooks import NO_FAULTS, FaultHooks


def _run(args: argparse.Namespace, hooks: FaultHooks = NO_FAULTS) -> int:
    from edge_agent.runtime import run_from_config

    cfg = load_config(args.config)
    totals = run_from_config(cfg, max_frames=args.max_frames, drain_timeout=args.drain_s,
                             hooks=hooks)
    print(json.dumps(totals, indent=2, default=str), flush=True)
    return 0


def _status(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    path = cfg.path(cfg.spool.dir) / "status.json"
    if not path.exists():
        print(f"no status yet ({path} does not exist: the agent has not reported)", file=sys.stderr)
        return 1
    status = json.loads(path.read_text())
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    r, t = status["report"], status["totals"]
    drops = ", ".join(f"{k}={v}" for k, v in sorted(t["drops"].items())) or "none"
    print(f"device {r['device_id']} (store {r['store_id']}) at {r['reported_at']}\n"
          f"  model {r['model_version']}  rules {r['rule_set_version']}  agent {r['agent_version']}\n"
          f"  frames {t['frames']}  captures {t['captures']}  spooled {t['spooled']}  "
          f"uploaded {t['uploaded_clips']} ({t['uploaded_bytes']} B)\n"
          f"  drops: {drops}  pauses {t['capture_pauses']}  cleanups {t['cleanups']}\n"
          f"  spool {r['spool_clips']} clip(s), {r['spool_bytes']} B  upload failures "
          f"{t['upload_failures']}  inference p50/p99 {r['inference_latency_ms']['p50']}/"
          f"{r['inference_latency_ms']['p99']} ms")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-agent", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the agent on its configured source")
    run.add_argument("--config", required=True, help="agent.toml")
    run.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    run.add_argument("--drain-s", type=float, default=0.0,
                     help="at exit, wait up to this long for the spool to upload")
    run.add_argument("-v", "--verbose", action="store_true")
    run.set_defaults(func=_run)
    st = sub.add_parser("status", help="print the agent's last status report")
    st.add_argument("--config", required=True)
    st.add_argument("--json", action="store_true")
    st.add_argument("-v", "--verbose", action="store_true")
    st.set_defaults(func=_status)
    key = sub.add_parser("federated-key", help="print this device's federated public key (made on "
                         "first use) for the fleet to register")
    key.add_argument("--config", required=True)
    key.add_argument("-v", "--verbose", action="store_true")
    key.set_defaults(func=_federated_key)
    return p


def _federated_key(args: argparse.Namespace) -> int:
    """`<device_id> <base64 Ed25519 public key>`: what provisioning registers in the fleet
    (flywheel.federated.devices.register_device); the private key stays in the device's file."""
    import base64

    from edge_agent.federated.identity import DeviceKey
    from edge_agent.runtime import device_key_path

    cfg = load_config(args.config)
    key = DeviceKey.load_or_create(device_key_path(cfg))
    print(cfg.device_id, base64.b64encode(key.public_bytes).decode())
    return 0


def main(argv: list[str] | None = None, *, hooks: FaultHooks = NO_FAULTS) -> int:
    """`hooks`: fault hooks for `run` (tests/support/faults.py drives the agent through them)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int((_run(args, hooks) if args.func is _run else args.func(args)) or 0)
    except ConfigError as e:
        print(f"edge-agent: invalid config: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
