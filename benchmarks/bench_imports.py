"""Imports: how much `flywheel import` costs over the least any import must do.

Baseline (same run, same files): read every photo and decode it fully. Measured: `flywheel import`
of the same ImageFolder into a fresh lake that already holds a frozen test set (full decode, EXIF
check, sha256, 256-bit pHash of both sides for the near-duplicate guard, Parquet, lake writes).
Alternated A-B-B-A. Reported: photos per second and the ratio import / decode (target <= 8).
Run: `python -m benchmarks.bench_imports [out_dir]` (writes out_dir/imports.json).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 8.0
CLASSES = ["T-shirt/top", "cola zero", "chips"]


def _decode_all(root: Path) -> int:
    from PIL import Image

    n = 0
    for f in sorted(root.rglob("*.jpg")):
        with Image.open(f) as im:
            im.load()
        n += 1
    return n


def main(out_dir: Path, per_class: int = 100, test_per_class: int = 20) -> dict:
    from edge_agent.lake import Lake
    from flywheel.imports.catalog import import_catalog_file
    from flywheel.imports.dataset import import_dataset
    from flywheel.sim import photos

    with tempfile.TemporaryDirectory(prefix="bench-imports-") as tmp:
        tmp = Path(tmp)
        photos.catalog_csv(tmp / "catalog.csv", CLASSES)
        (tmp / "map.csv").write_text("class,id\nT-shirt_top,T-shirt/top\ncola zero,cola zero\nchips,chips\n")
        photos.write_imagefolder(tmp / "train", photos.dataset(CLASSES, per_class, seed=1))
        photos.write_imagefolder(tmp / "test", photos.dataset(CLASSES, test_per_class, seed=2))
        times: dict[str, list[float]] = {"decode": [], "import": []}
        for i, mode in enumerate(["decode", "import", "import", "decode"]):
            t = time.perf_counter()
            if mode == "decode":
                n = _decode_all(tmp / "train")
            else:
                lake = Lake.at_path(tmp / f"lake-{i}")
                import_catalog_file(lake, tmp / "catalog.csv")
                import_dataset(lake, tmp / "test", standard_set="shelf", mapping_file=tmp / "map.csv")
                t = time.perf_counter()  # the frozen set is set-up; the training import is measured
                report = import_dataset(lake, tmp / "train", mapping_file=tmp / "map.csv")
                assert report.frames == n_photos(per_class) and not report.errors
            times[mode].append(time.perf_counter() - t)
    decode_s, import_s = statistics.median(times["decode"]), statistics.median(times["import"])
    result = {
        "photos": n, "photo_size": list(photos.SIZE), "frozen_test_photos": 3 * test_per_class,
        "decode_s": [round(x, 3) for x in times["decode"]],
        "import_s": [round(x, 3) for x in times["import"]],
        "import_photos_per_s": n / import_s, "decode_photos_per_s": n / decode_s,
        "import_vs_decode_ratio": import_s / decode_s, "target_ratio": TARGET_RATIO,
        "ratio_within_target": import_s / decode_s <= TARGET_RATIO,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "imports.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def n_photos(per_class: int) -> int:
    return per_class * len(CLASSES)


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "var" / "bench"
    print(json.dumps(main(out), indent=1))
