"""`flywheel` command line. Each stage registers its subcommands from its own `cli` module."""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules exposing `register(subparsers)`; a stage adds its module here when it lands.
COMMAND_MODULES = [
    "flywheel.depot.cli",
    "flywheel.federated.cli",
    "flywheel.fleet.cli",
    "flywheel.imports.cli",
    "flywheel.label.cli",
    "flywheel.release.cli",
    "flywheel.sim.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flywheel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
