"""`flywheel catalog import`: a product catalog from CSV or Parquet into depot/catalog/.

Columns: id, name, brand, barcode, weight (grams; `weight_g` also accepted) and optionally image
(a path relative to the file). Every row is checked; a bad row is reported with its line (CSV) or
row (Parquet) and the reason, and the rest imports. A missing column or no good row at all imports
nothing. Product images are stored content-addressed beside the catalog.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.lake import Lake, ObjectExists
from flywheel.imports.barcodes import check_barcode
from flywheel.imports.images import BadImage, inspect_image, sha256
from flywheel.learner import reference_sets as depot_sets

CATALOG_SCHEMA = "flywheel.catalog/v1"
REQUIRED = ("id", "name", "brand", "barcode", "weight")
ALIASES = {"weight_g": "weight", "sku": "id", "ean": "barcode", "image_path": "image"}
IMAGE_AREA = f"{depot_sets.CATALOG_AREA}/images"


class CatalogError(ValueError):
    """The file as a whole cannot be imported (format, columns, no good row)."""


@dataclass
class CatalogReport:
    products: int
    bad_rows: list[tuple[str, str]] = field(default_factory=list)  # (where, reason)
    imported: depot_sets.Imported | None = None

    def summary(self) -> str:
        lines = [f"{self.products} product(s) imported, {len(self.bad_rows)} bad row(s)"]
        lines += [f"  {where}: {reason}" for where, reason in self.bad_rows]
        return "\n".join(lines)


def read_rows(path: Path) -> list[tuple[str, dict[str, str]]]:
    """(where, row) with every value as a stripped string; where = 'line N' or 'row N'."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        text = path.read_text(encoding="utf-8-sig")  # Excel writes a BOM
        reader = csv.DictReader(io.StringIO(text))
        header = [_column(c) for c in (reader.fieldnames or [])]
        _require(header, path)
        reader.fieldnames = header
        return [(f"line {reader.line_num}", {k: (v or "").strip() for k, v in row.items() if k})
                for row in reader]
    if suffix in (".parquet", ".pq"):
        import polars as pl

        df = pl.read_parquet(path)
        df = df.rename({c: _column(c) for c in df.columns})
        _require(df.columns, path)
        df = df.with_columns(pl.all().cast(pl.String))
        return [(f"row {i + 1}", {k: ("" if v is None else v.strip()) for k, v in row.items()})
                for i, row in enumerate(df.iter_rows(named=True))]
    raise CatalogError(f"{path}: unsupported catalog format {suffix!r} (use .csv or .parquet)")


def _column(name: str) -> str:
    c = name.strip().lower()
    return ALIASES.get(c, c)


def _require(columns: list[str], path: Path) -> None:
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise CatalogError(f"{path}: missing column(s) {missing}; has {list(columns)} "
                           f"(need {list(REQUIRED)}, optional 'image')")


def check_rows(rows: list[tuple[str, dict[str, str]]], base: Path
               ) -> tuple[list[dict], list[tuple[str, str]], dict[str, bytes]]:
    """(products, bad rows, image bytes by key). The first of two rows with one id or barcode wins."""
    products: list[dict] = []
    bad: list[tuple[str, str]] = []
    images: dict[str, bytes] = {}
    seen_ids: dict[str, str] = {}
    seen_codes: dict[str, str] = {}
    for where, row in rows:
        reason, product = _check_row(row, base, images)
        if reason is None and product["id"] in seen_ids:
            reason = f"duplicate id {product['id']!r} (first at {seen_ids[product['id']]})"
        if reason is None and product["barcode"] in seen_codes:
            reason = f"duplicate barcode {product['barcode']} (first at {seen_codes[product['barcode']]})"
        if reason is not None:
            bad.append((where, reason))
            continue
        seen_ids[product["id"]] = where
        if product["barcode"]:
            seen_codes[product["barcode"]] = where
        products.append(product)
    return products, bad, images


def _check_row(row: dict[str, str], base: Path, images: dict[str, bytes]) -> tuple[str | None, dict]:
    pid, name = row.get("id", ""), row.get("name", "")
    if not pid:
        return "empty id", {}
    if not name:
        return f"product {pid!r} has no name", {}
    barcode = None
    if row.get("barcode"):
        barcode, why = check_barcode(row["barcode"])
        if why:
            return why, {}
    try:
        weight = float(row.get("weight", ""))
    except ValueError:
        return f"weight {row.get('weight')!r} is not a number (grams)", {}
    if not math.isfinite(weight) or weight <= 0:
        return f"weight {weight} g is not a positive number", {}
    image_key = None
    if row.get("image"):
        path = base / row["image"]
        try:
            data = path.read_bytes()
            _, _, fmt = inspect_image(data)
        except OSError as e:
            return f"image {row['image']!r} cannot be read ({e.strerror or e})", {}
        except BadImage as e:
            return f"image {row['image']!r}: {e}", {}
        image_key = f"{IMAGE_AREA}/{sha256(data)[:16]}.{fmt.lower()}"
        images[image_key] = data
    # "ean" is the key the Learner reads as the SKU id (the simulator's ids are EAN-13s)
    return None, {"id": pid, "ean": pid, "name": name, "brand": row.get("brand", ""),
                  "barcode": barcode, "weight_g": weight, "image_key": image_key}


def import_catalog_file(lake: Lake, path: str | Path) -> CatalogReport:
    """Check every row, store the good ones as a new catalog version; report the bad ones."""
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"{path}: no such file")
    products, bad, images = check_rows(read_rows(path), path.parent)
    if not products:
        raise CatalogError(f"{path}: no importable product ({len(bad)} bad row(s)):\n"
                           + "\n".join(f"  {w}: {r}" for w, r in bad[:20]))
    used = {p["image_key"] for p in products}
    for key, data in images.items():
        if key in used:
            try:
                lake.put(key, data, if_absent=True)
            except ObjectExists:
                pass  # content-addressed: already there
    doc = {"schema": CATALOG_SCHEMA, "source": path.name,
           "products": sorted(products, key=lambda p: p["id"])}
    imported = depot_sets.import_catalog(lake, json.dumps(doc, indent=1, sort_keys=True))
    return CatalogReport(len(products), bad, imported)


def read_catalog(lake: Lake) -> list[dict]:
    """The current catalog's products (simulator or imported)."""
    _, data = depot_sets.read_current_bytes(lake, depot_sets.CATALOG_AREA)
    return json.loads(data)["products"]
