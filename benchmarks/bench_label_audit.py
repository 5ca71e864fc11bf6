"""`make bench` entry of the label audit mode of bench_label (`python -m benchmarks.bench_label --audit`)."""

from __future__ import annotations

import json
from pathlib import Path


def main(out_dir: Path) -> dict:
    from benchmarks.bench_label import main as bench_label

    return bench_label(out_dir, audit=True)


if __name__ == "__main__":
    print(json.dumps(main(Path("var/bench")), indent=1))
