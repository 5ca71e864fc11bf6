"""Class names as a dataset spells them -> catalog ids, through a mapping file or the catalog.

A mapping file is CSV (`class,id` header) or JSON ({"class": "id"}); the id `empty` (or an empty
value) marks a background class. Without a file, a class matches a catalog id exactly, else a
product name (exactly, then ignoring case) when exactly one product has it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from flywheel.learner.config import EMPTY_CLASS

BACKGROUND_NAMES = {"empty", "background", "__background__", "none", "nothing"}


class MappingError(ValueError):
    pass


def read_mapping_file(path: str | Path) -> dict[str, str]:
    path = Path(path)
    try:
        if path.suffix.lower() == ".json":
            doc = json.loads(path.read_text())
            if not isinstance(doc, dict):
                raise MappingError(f"{path}: a JSON mapping is an object {{class: id}}")
            return {str(k): str(v or EMPTY_CLASS) for k, v in doc.items()}
        rows = list(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, ValueError) as e:
        raise MappingError(f"{path}: cannot read the mapping ({e})") from None
    if rows and not {"class", "id"} <= set(rows[0]):
        raise MappingError(f"{path}: a CSV mapping needs the columns 'class' and 'id'")
    return {r["class"]: (r["id"] or EMPTY_CLASS).strip() for r in rows}


def map_classes(names: set[str], products: list[dict], mapping: dict[str, str] | None
                ) -> tuple[dict[str, str], dict[str, str]]:
    """(class -> catalog id or EMPTY_CLASS, class -> why it maps to nothing)."""
    ids = {p["id"] if "id" in p else p["ean"] for p in products}
    by_name: dict[str, list[str]] = {}
    by_lower: dict[str, list[str]] = {}
    for p in products:
        pid = p.get("id", p["ean"])
        by_name.setdefault(p.get("name", ""), []).append(pid)
        by_lower.setdefault(p.get("name", "").lower(), []).append(pid)
    out: dict[str, str] = {}
    unknown: dict[str, str] = {}
    for name in sorted(names):
        if mapping is not None:
            target = mapping.get(name)
            if target is None:
                unknown[name] = "not in the mapping file"
            elif target == EMPTY_CLASS or target in ids:
                out[name] = target
            else:
                unknown[name] = f"mapped to {target!r}, which is not a catalog id"
            continue
        if name in ids:
            out[name] = name
        elif name.lower() in BACKGROUND_NAMES:
            out[name] = EMPTY_CLASS
        elif len(by_name.get(name, [])) == 1:
            out[name] = by_name[name][0]
        elif len(by_lower.get(name.lower(), [])) == 1:
            out[name] = by_lower[name.lower()][0]
        elif len(by_lower.get(name.lower(), [])) > 1:
            unknown[name] = f"ambiguous: {len(by_lower[name.lower()])} products have that name"
        else:
            unknown[name] = "no catalog id or product name matches"
    return out, unknown
