"""`flywheel demo`: run whatever of the loop exists, on the embedded default (local lake)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the built stages of the loop on the local lake")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("flywheel demo: no stage is built yet")
    return 0
