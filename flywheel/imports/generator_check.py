"""Skip regenerating the simulator's exports when nothing that makes their bytes has changed.

Every Learner run imports the simulator's catalog, manual collection and frozen sets; for the frozen
sets the import only checks that the generator still yields the recorded bytes (drift is reported,
the frozen version kept). Rendering them takes minutes on every run. The check's answer depends only
on the generator (the simulator's files, the export code, the libraries that write the bytes) and
its settings, so it is recorded in the lake beside the sets, keyed by a fingerprint of those:

    depot/generator_checks/<fingerprint>.json   {set name: {"sha256": recorded, "generated": produced}}

A run whose fingerprint has a record, and whose current versions are still the recorded ones,
returns the recorded answer without rendering; any change to the simulator's code, the export code,
a library version or the settings is a new fingerprint, so the generator runs and drift is caught.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from edge_agent.lake import Lake, ObjectNotFound
from flywheel.learner import reference_sets as depot_sets
from flywheel.learner.insertion_sets import insertion_area
from flywheel.learner.pipeline import SimSources, import_from_simulator

CHECK_AREA = "depot/generator_checks"
# libraries whose versions can change the exported bytes (rendering, barcodes, Parquet writing)
BYTE_LIBRARIES = ("numpy", "pillow", "pyarrow", "zxing-cpp")
SIM_ROOT = Path(__file__).resolve().parents[1] / "sim"


def fingerprint(src: SimSources, sim_root: Path = SIM_ROOT) -> str:
    """sha256 over the simulator's files, the import code, byte-relevant library versions and the
    settings."""
    from flywheel.learner import pipeline

    h = hashlib.sha256()
    for path in sorted(p for p in sim_root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        h.update(path.relative_to(sim_root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for fn in (pipeline.import_from_simulator, pipeline._import_insertion_sets):
        h.update(inspect.getsource(fn).encode())
    for lib in BYTE_LIBRARIES:
        try:
            h.update(f"{lib}=={metadata.version(lib)}".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{lib} absent".encode())
    h.update(json.dumps(asdict(src), sort_keys=True).encode())
    return h.hexdigest()


def _area(name: str) -> str:
    if name == "catalog":
        return depot_sets.CATALOG_AREA
    if name == "manual_collection":
        return depot_sets.MANUAL_AREA
    if name.startswith("insertions_"):
        return insertion_area(name)
    return depot_sets.standard_area(name)


def _key(fp: str) -> str:
    return f"{CHECK_AREA}/{fp}.json"


def cached(lake: Lake, fp: str) -> dict[str, depot_sets.Imported] | None:
    """The recorded answer for `fp` while every set's current version is still the recorded one."""
    try:
        record = json.loads(lake.get(_key(fp)))
    except ObjectNotFound:
        return None
    out = {}
    for name, r in record["sets"].items():
        cur = depot_sets.read_current(lake, _area(name))
        if cur is None or cur["sha256"] != r["sha256"]:
            return None
        drift = r["generated"] if r["generated"] != r["sha256"] else None
        out[name] = depot_sets.Imported(name, cur["key"], cur["sha256"], cur["rows"], False, drift)
    return out


def import_checked(lake: Lake, src: SimSources) -> dict[str, depot_sets.Imported]:
    """import_from_simulator, or its recorded answer when the generator is unchanged."""
    fp = fingerprint(src)
    hit = cached(lake, fp)
    if hit is not None:
        return hit
    imported = import_from_simulator(lake, src)
    record = {"fingerprint": fp, "sources": asdict(src),
              "sets": {n: {"sha256": i.sha256, "generated": i.drift_sha256 or i.sha256}
                       for n, i in imported.items()}}
    lake.put(_key(fp), json.dumps(record, indent=1, sort_keys=True).encode())
    return imported
