"""`flywheel federated ...`: the fleet's register of device keys (who may join a round).

    edge-agent federated-key --config agent.toml        (on the device) prints: DEVICE_ID KEY
    flywheel federated register --lake URI DEVICE_ID KEY      registers that key for the device
    flywheel federated revoke --lake URI DEVICE_ID            from the next round on, refused
"""

from __future__ import annotations

import argparse
import base64
import sys


def register(sub: argparse._SubParsersAction) -> None:
    fed = sub.add_parser("federated", help="federated learning: the fleet's device keys")
    fsub = fed.add_subparsers(dest="federated_command", required=True)
    p = fsub.add_parser("register", help="register a device's public key (edge-agent federated-key)")
    p.add_argument("--lake", required=True, help="file:///path, s3://bucket/prefix or a directory")
    p.add_argument("device_id")
    p.add_argument("public_key", help="base64 Ed25519 public key (32 bytes)")
    p.set_defaults(func=_register)
    r = fsub.add_parser("revoke", help="remove a device's key: its next joins are refused")
    r.add_argument("--lake", required=True)
    r.add_argument("device_id")
    r.set_defaults(func=_revoke)


def _register(args: argparse.Namespace) -> int:
    from edge_agent.lake import open_lake
    from flywheel.federated.devices import register_device

    try:
        key = base64.b64decode(args.public_key, validate=True)
        register_device(open_lake(args.lake), args.device_id, key)
    except ValueError as e:  # not base64, not 32 bytes, not a device id
        print(f"flywheel federated register: {e}", file=sys.stderr)
        return 2
    print(f"registered {args.device_id}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from edge_agent.lake import open_lake
    from flywheel.federated.devices import revoke_device

    revoke_device(open_lake(args.lake), args.device_id)
    print(f"revoked {args.device_id}")
    return 0
