"""`flywheel import` (a labelled image dataset) and `flywheel catalog import` (a product catalog)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flywheel.imports.formats import FORMATS


def register(sub: argparse._SubParsersAction) -> None:
    i = sub.add_parser("import", help="import a labelled image dataset (training data or a frozen test set)")
    i.add_argument("path", type=Path, help="dataset folder, data.yaml, COCO JSON or Label Studio JSON export")
    i.add_argument("--format", choices=FORMATS, help="default: detected from the path")
    i.add_argument("--as-standard-set", metavar="NAME", dest="standard_set",
                   help="import as a frozen standard test set NAME (default: the manual collection)")
    i.add_argument("--mapping", type=Path, help="class -> catalog id, CSV (class,id) or JSON")
    i.add_argument("--images", type=Path, help="image folder for COCO / Label Studio exports")
    i.add_argument("--subset", help="only this split folder of a YOLO dataset (train, val, test)")
    i.add_argument("--group", choices=("image", "folder"), default="image",
                   help="train/val split unit: each image, or all images of one folder together")
    i.add_argument("--lake", help="lake path or URI (default: the local deployment's lake)")
    i.add_argument("--json", action="store_true", help="print the report as JSON")
    i.set_defaults(func=run_import)

    c = sub.add_parser("catalog", help="the product catalog")
    cc = c.add_subparsers(dest="catalog_command", required=True)
    ci = cc.add_parser("import", help="import a catalog from CSV or Parquet "
                                      "(id, name, brand, barcode, weight, optional image)")
    ci.add_argument("path", type=Path)
    ci.add_argument("--lake", help="lake path or URI (default: the local deployment's lake)")
    ci.set_defaults(func=run_catalog_import)


def run_import(args: argparse.Namespace) -> int:
    from flywheel.depot.cli import lake_from
    from flywheel.imports.dataset import DatasetImportError, import_dataset
    from flywheel.imports.formats import FormatError
    from flywheel.imports.mapping import MappingError

    try:
        report = import_dataset(lake_from(args.lake), args.path, fmt=args.format,
                                standard_set=args.standard_set, mapping_file=args.mapping,
                                images_dir=args.images, subset=args.subset, group=args.group)
    except DatasetImportError as e:
        print(e.report.summary(max_lines=200))
        return 2
    except (FormatError, MappingError, ValueError) as e:
        print(f"error: {e}")
        return 2
    if args.json:
        d = dict(report.__dict__, imported=report.imported.as_dict() if report.imported else None)
        print(json.dumps(d, indent=1, default=str))
    else:
        print(report.summary(max_lines=200))
    return 0


def run_catalog_import(args: argparse.Namespace) -> int:
    from flywheel.depot.cli import lake_from
    from flywheel.imports.catalog import CatalogError, import_catalog_file

    try:
        report = import_catalog_file(lake_from(args.lake), args.path)
    except CatalogError as e:
        print(f"error: {e}")
        return 2
    print(report.summary())
    if report.imported:
        print(f"stored {report.imported.key} (sha256 {report.imported.sha256[:16]})")
    return 0
