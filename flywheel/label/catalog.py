"""The product catalog as the labelers see it (the Depot's imported catalog JSON)."""

from __future__ import annotations

import json

from edge_agent.lake import Lake
from flywheel.label.prelabelers.base import Product


def parse_catalog(data: bytes | str) -> list[Product]:
    """Products from catalog JSON ({"products": [...]}); missing fields become None."""
    out = []
    for p in json.loads(data)["products"]:
        w = p.get("weight_g")
        out.append(Product(ean=str(p["ean"]), name=(p.get("name") or None), brand=(p.get("brand") or None),
                           category=p.get("category"), weight_g=float(w) if w is not None else None))
    return out


def read_catalog(lake: Lake) -> list[Product]:
    """The catalog currently imported into the Depot (depot/catalog/current.json)."""
    from flywheel.learner.reference_sets import CATALOG_AREA, read_current_bytes

    _, data = read_current_bytes(lake, CATALOG_AREA)
    return parse_catalog(data)
