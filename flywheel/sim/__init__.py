"""Store-world simulator: smart-cart camera data with ground truth, so the whole flywheel can be
exercised without a fleet. Plain Python + numpy + Pillow + zxing-cpp.

    world = StoreWorld(seed=0)                 # catalog, store profiles, pre-rendered assets
    for frame in world.session("A", seed=1):   # a cart session in store A, 10 fps
        frame.device   # what the cart sees: image, t, weight_g, location
        frame.truth    # ground truth: sku, boxes, is_empty, applied conditions, phase

Datasets: build_bootstrap_dataset / build_manual_test_set / build_production_test_set, written
with export_dataset (one Parquet file each, schema in flywheel.sim.export.DATASET_SCHEMA).
"""

from flywheel.sim.catalog import Catalog, Product, build_catalog, is_valid_ean13
from flywheel.sim.conditions import CONDITION_NAMES, Conditions
from flywheel.sim.export import (
    DATASET_SCHEMA,
    build_bootstrap_dataset,
    build_manual_test_set,
    build_production_test_set,
    build_production_training_set,
    decode_png,
    export_dataset,
    export_standard_datasets,
    write_catalog,
)
from flywheel.sim.session import CartSession, DeviceFrame, FrameTruth, Location, SimFrame
from flywheel.sim.stores import MANUAL, PRODUCTION, StoreProfile
from flywheel.sim.world import StoreWorld, default_world

__all__ = [
    "CONDITION_NAMES",
    "DATASET_SCHEMA",
    "MANUAL",
    "PRODUCTION",
    "CartSession",
    "Catalog",
    "Conditions",
    "DeviceFrame",
    "FrameTruth",
    "Location",
    "Product",
    "SimFrame",
    "StoreProfile",
    "StoreWorld",
    "build_bootstrap_dataset",
    "build_catalog",
    "build_manual_test_set",
    "build_production_test_set",
    "build_production_training_set",
    "decode_png",
    "default_world",
    "export_dataset",
    "export_standard_datasets",
    "is_valid_ean13",
    "write_catalog",
]
