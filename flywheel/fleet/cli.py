"""`flywheel fleet simulate --carts N --minutes M --lake URI`: simulated carts through real agents."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    fleet = sub.add_parser("fleet", help="drive simulated carts through real edge agents")
    fsub = fleet.add_subparsers(dest="fleet_command", required=True)
    p = fsub.add_parser("simulate", help="N carts, M simulated minutes each, clips into a lake")
    p.add_argument("--carts", type=int, default=3)
    p.add_argument("--minutes", type=float, default=1.0, help="simulated minutes per cart")
    p.add_argument("--lake", required=True, help="file:///path, s3://bucket/prefix or a directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--day", default=None, help="capture day YYYY-MM-DD (default: today, UTC)")
    p.add_argument("--work-dir", default=None, help="keep spools and the model slot here")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge_agent.lake import open_lake
    from flywheel.fleet.runner import simulate_fleet

    if args.carts < 1 or args.minutes <= 0:
        print("fleet simulate: --carts must be >= 1 and --minutes > 0")
        return 2
    summary = simulate_fleet(open_lake(args.lake), carts=args.carts, minutes=args.minutes,
                             seed=args.seed, day=args.day, work_dir=args.work_dir,
                             progress=not args.no_progress)
    print("\n".join(summary.lines()))
    return 0 if summary.reconciles() else 1
