"""`flywheel sim ...`: look at the simulated store world and export its datasets."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    sim = sub.add_parser("sim", help="the store-world simulator")
    cmds = sim.add_subparsers(dest="sim_command", required=True)

    p = cmds.add_parser("preview", help="write a PNG contact sheet of manual and production frames")
    p.add_argument("--out", type=Path, default=Path("var/sim_preview.png"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cols", type=int, default=6)
    p.set_defaults(func=preview)

    e = cmds.add_parser("export", help="export the catalog, bootstrap dataset and frozen test sets")
    e.add_argument("--out", type=Path, default=Path("var/sim_datasets"))
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--per-sku", type=int, default=24, help="bootstrap frames per core SKU")
    e.add_argument("--test-size", type=int, default=200, help="frames per frozen test set")
    e.set_defaults(func=export)


def preview(args: argparse.Namespace) -> int:
    from flywheel.sim.preview import write_contact_sheet

    args.out.parent.mkdir(parents=True, exist_ok=True)
    info = write_contact_sheet(args.out, seed=args.seed, cols=args.cols)
    print(f"contact sheet: {info}")
    return 0


def export(args: argparse.Namespace) -> int:
    from flywheel.sim.export import export_standard_datasets

    manifests = export_standard_datasets(args.out, seed=args.seed, n_per_sku=args.per_sku,
                                         n_test=args.test_size)
    for name, m in sorted(manifests.items()):
        print(f"{name:>18}: {m.get('rows', '-')} rows  sha256 {str(m.get('sha256', ''))[:12]}")
    print(f"written to {args.out}")
    return 0
