"""`make bench`: run every benchmarks/bench_*.py and collect their JSON results.

Each benchmark module exposes `main(out_dir: Path) -> dict`, writes `out_dir/<name>.json` and
reports ratios against a baseline measured in the same run (these machines are noisy).
Usage: python -m benchmarks.run_all [--out var/bench] [--only sim,depot]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument("--only", default="", help="comma-separated names (bench_<name>.py)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    only = {n for n in args.only.split(",") if n}
    names = sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py"))
    summary: dict[str, object] = {}
    failed = 0
    for name in names:
        if only and name.removeprefix("bench_") not in only:
            continue
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        try:
            result = importlib.import_module(f"benchmarks.{name}").main(args.out)
            summary[name] = {"ok": True, "seconds": round(time.perf_counter() - start, 1),
                             "result": result}
            print(json.dumps(result, indent=2, default=str), flush=True)
        except Exception:
            failed += 1
            summary[name] = {"ok": False, "error": traceback.format_exc()}
            traceback.print_exc()
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"results in {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
