"""The Learner job's sources when they are the user's: what `flywheel catalog import` and
`flywheel import` put in the depot, read as they are (the job generates and writes nothing)."""

from __future__ import annotations

import json

from edge_agent.lake import Lake
from flywheel.imports.catalog import CATALOG_SCHEMA
from flywheel.imports.generator_check import import_checked
from flywheel.learner import reference_sets as depot_sets
from flywheel.learner.errors import DatasetError
from flywheel.learner.pipeline import SimSources


def imported_sources(lake: Lake) -> dict[str, depot_sets.Imported]:
    """{"catalog", "manual_collection", <every standard set>} -> its current version; a clear error
    naming the command to run when one is missing."""
    out: dict[str, depot_sets.Imported] = {}
    for name, area, cmd in (("catalog", depot_sets.CATALOG_AREA, "flywheel catalog import CATALOG.csv"),
                            ("manual_collection", depot_sets.MANUAL_AREA, "flywheel import PHOTOS/")):
        cur = depot_sets.read_current(lake, area)
        if cur is None:
            raise DatasetError(f"no {name} in {lake.uri}: run `{cmd}` first")
        out[name] = depot_sets.Imported(name, cur["key"], cur["sha256"], cur["rows"], False)
    names = depot_sets.standard_set_names(lake)
    if not names:
        raise DatasetError(f"no frozen standard test set in {lake.uri}: run "
                           "`flywheel import TEST_PHOTOS/ --as-standard-set NAME` first")
    for name in names:
        cur = depot_sets.read_current(lake, depot_sets.standard_area(name))
        out[name] = depot_sets.Imported(name, cur["key"], cur["sha256"], cur["rows"], False)
    return out


def refuse_simulator_over_user_data(lake: Lake) -> None:
    """The simulator's import replaces the catalog: never over a catalog the user imported."""
    cur = depot_sets.read_current(lake, depot_sets.CATALOG_AREA)
    if cur is not None and json.loads(lake.get(cur["key"])).get("schema") == CATALOG_SCHEMA:
        raise DatasetError(f"{lake.uri} holds an imported catalog ({cur['rows']} products); the "
                           "simulator would replace it. Run the job with learner_sources config "
                           "`source: imported` to train on the imported data")


def load_sources(lake: Lake, source: str = "simulator", sim: SimSources | None = None
                 ) -> dict[str, depot_sets.Imported]:
    """The Learner job's starting data: the simulator's exports imported into the depot (the demo;
    refused over a user's catalog; not rendered again while the generator is unchanged, see
    generator_check), or what the user imported, as it is ("imported")."""
    if source == "imported":
        return imported_sources(lake)
    if source != "simulator":
        raise ValueError(f"source must be 'simulator' or 'imported', not {source!r}")
    refuse_simulator_over_user_data(lake)
    return import_checked(lake, sim or SimSources())
