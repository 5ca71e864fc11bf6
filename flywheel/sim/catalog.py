"""Seeded product catalog: SKUs with names, brands, package shapes, palettes, weights and EAN-13s.

The catalog is the ground-truth label space of the simulator. Core SKUs are sold everywhere (and are
what the manual collection covers); store-specific SKUs exist only in one store's production data,
so a model bootstrapped on manual data has never seen them (the open-set case the loop must fix).
"""

from __future__ import annotations

import colorsys
import json
from dataclasses import asdict, dataclass, field

import numpy as np

SHAPES: tuple[str, ...] = ("box", "can", "bottle", "bag")

# category -> (package shape, weight range in grams, product names). Shapes follow the real world
# so that shape is a (weak) cue a model can learn, and weights are plausible for the weight sensor.
CATEGORIES: dict[str, tuple[str, tuple[int, int], tuple[str, ...]]] = {
    "cereal": ("box", (300, 750), ("Crunchy Oats", "Honey Flakes", "Choco Rings", "Bran Bites")),
    "pasta": ("box", (400, 1000), ("Penne Rigate", "Spaghetti No5", "Fusilli", "Farfalle")),
    "tea": ("box", (80, 250), ("Earl Grey", "Green Mint", "Rooibos", "Chamomile")),
    "cookies": ("box", (150, 400), ("Butter Crisps", "Oat Cookies", "Choco Chips", "Ginger Snaps")),
    "soda": ("can", (330, 360), ("Cola Zero", "Lemon Fizz", "Orange Pop", "Ginger Ale")),
    "soup": ("can", (380, 420), ("Tomato Soup", "Lentil Soup", "Chicken Broth", "Pea Soup")),
    "beans": ("can", (400, 440), ("Baked Beans", "Kidney Beans", "Chickpeas", "Sweet Corn")),
    "water": ("bottle", (520, 1550), ("Still Water", "Sparkling", "Mineral Water", "Spring Water")),
    "juice": ("bottle", (1000, 1100), ("Apple Juice", "Orange Juice", "Multifruit", "Grape Juice")),
    "detergent": ("bottle", (750, 1600), ("Dish Soap", "Laundry Gel", "Floor Clean", "Glass Spray")),
    "chips": ("bag", (120, 200), ("Salted Chips", "Paprika Chips", "Sour Cream", "Tortilla")),
    "coffee": ("bag", (250, 500), ("Espresso", "Dark Roast", "Decaf", "House Blend")),
    "rice": ("bag", (500, 1000), ("Basmati", "Jasmine Rice", "Risotto", "Long Grain")),
    "candy": ("bag", (100, 300), ("Gummy Bears", "Sour Worms", "Mint Drops", "Toffees")),
}

BRANDS: tuple[str, ...] = (
    "Nordia", "Alpenhof", "Sunvale", "Bluecrest", "Marigold", "Okapi", "Verde", "Kestrel",
    "Lumen", "Harbor", "Tamarind", "Zephyr", "Orchard", "Pinecone", "Rivet", "Saffron",
)

# GS1 country prefixes (first three digits) used for the generated EANs; real-looking, not real SKUs.
_GS1_PREFIXES: tuple[str, ...] = ("400", "500", "540", "590", "760", "800", "871", "890")


def ean13_check_digit(body12: str) -> int:
    """GS1 check digit for a 12-digit body: weights 1,3,1,3,... from the left."""
    if len(body12) != 12 or not body12.isdigit():
        raise ValueError(f"EAN-13 body must be 12 digits, got {body12!r}")
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body12))
    return (10 - total % 10) % 10


def make_ean13(body12: str) -> str:
    return body12 + str(ean13_check_digit(body12))


def is_valid_ean13(code: str) -> bool:
    return (
        isinstance(code, str)
        and len(code) == 13
        and code.isdigit()
        and ean13_check_digit(code[:12]) == int(code[12])
    )


RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Product:
    ean: str  # EAN-13 with a correct check digit; the SKU id everywhere in Flywheel
    name: str
    brand: str
    category: str
    shape: str  # one of SHAPES
    palette: tuple[RGB, RGB, RGB]  # (primary, secondary, text) colours of the packaging
    weight_g: float
    store_specific_to: str | None = None  # store name, or None for core SKUs sold everywhere

    def to_record(self) -> dict:
        rec = asdict(self)
        rec["palette"] = [list(c) for c in self.palette]
        return rec


@dataclass(frozen=True)
class Catalog:
    products: tuple[Product, ...]
    seed: int = 0
    _by_ean: dict[str, Product] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_ean.update({p.ean: p for p in self.products})

    def __len__(self) -> int:
        return len(self.products)

    def __iter__(self):
        return iter(self.products)

    def by_ean(self, ean: str) -> Product:
        return self._by_ean[ean]

    @property
    def core(self) -> list[Product]:
        return [p for p in self.products if p.store_specific_to is None]

    def store_specific(self, store: str) -> list[Product]:
        return [p for p in self.products if p.store_specific_to == store]

    def available_in(self, store: str) -> list[Product]:
        """What a shopper can pick in `store` ("manual" = the lab: core SKUs only)."""
        return self.core + ([] if store == "manual" else self.store_specific(store))

    def to_records(self) -> list[dict]:
        return [p.to_record() for p in self.products]

    def to_json(self) -> str:
        return json.dumps({"seed": self.seed, "products": self.to_records()}, indent=1)


def _palette(hue: float, rng: np.random.Generator) -> tuple[RGB, RGB, RGB]:
    def rgb(h: float, s: float, v: float) -> RGB:
        r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
        return (int(r * 255), int(g * 255), int(b * 255))

    sat = float(rng.uniform(0.55, 0.95))
    val = float(rng.uniform(0.55, 0.95))
    primary = rgb(hue, sat, val)
    # secondary: a contrasting hue so packs are two-tone like real ones
    secondary = rgb(hue + float(rng.choice([0.33, 0.5, 0.66])), float(rng.uniform(0.4, 0.9)), 0.9)
    text = (250, 250, 245) if val < 0.8 else (25, 25, 30)
    return primary, secondary, text


def build_catalog(
    seed: int = 0,
    n_core: int = 21,
    stores: tuple[str, ...] = ("A", "B", "C"),
    n_store_specific: int = 3,
) -> Catalog:
    """A deterministic catalog: `n_core` core SKUs plus `n_store_specific` per store (30 by default)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xCA7]))
    n_total = n_core + n_store_specific * len(stores)
    cats = list(CATEGORIES)
    # every (category, name) at most once, so names are unique and readable
    pool = [(c, n) for c in cats for n in CATEGORIES[c][2]]
    if n_total > len(pool):
        raise ValueError(f"at most {len(pool)} SKUs supported, asked {n_total}")
    picks = rng.permutation(len(pool))[:n_total]
    # hues spread by the golden ratio: neighbouring SKUs get well separated colours
    hue0 = float(rng.uniform())
    brand_codes = {b: f"{int(rng.integers(1000, 99999)):05d}" for b in BRANDS}
    used: set[str] = set()
    products: list[Product] = []
    for i, k in enumerate(picks):
        category, name = pool[int(k)]
        shape, (wlo, whi), _ = CATEGORIES[category]
        brand = BRANDS[int(rng.integers(len(BRANDS)))]
        prefix = _GS1_PREFIXES[int(rng.integers(len(_GS1_PREFIXES)))]
        while True:
            item = f"{int(rng.integers(0, 10_000)):04d}"
            ean = make_ean13(prefix + brand_codes[brand] + item)
            if ean not in used:
                used.add(ean)
                break
        store = None if i < n_core else stores[(i - n_core) // n_store_specific]
        products.append(
            Product(
                ean=ean,
                name=name,
                brand=brand,
                category=category,
                shape=shape,
                palette=_palette(hue0 + i * 0.618034, rng),
                weight_g=float(round(rng.uniform(wlo, whi))),
                store_specific_to=store,
            )
        )
    return Catalog(products=tuple(products), seed=seed)
