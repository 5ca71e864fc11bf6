"""Layering: the device side stays light and the domain core stays free of the orchestrator."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EDGE = ROOT / "edge_agent"
# What a device must never import or install: the cloud packages and the heavy ML/orchestration stack.
FORBIDDEN_FOR_EDGE = {"flywheel", "assets", "resources", "jobs", "dagster", "dagster_ray",
                      "dagster_aws", "ray", "torch", "torchvision", "transformers", "ultralytics",
                      "polars", "duckdb", "lancedb"}
FORBIDDEN_DISTRIBUTIONS = {"dagster", "dagster-ray", "dagster-aws", "ray", "torch", "torchvision",
                           "transformers", "ultralytics", "polars", "duckdb", "lancedb", "flywheel"}


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def python_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.py") if "build" not in p.parts and ".egg-info" not in str(p)]


def test_edge_agent_source_imports_nothing_forbidden() -> None:
    offenders = {str(p.relative_to(ROOT)): sorted(imported_top_levels(p) & FORBIDDEN_FOR_EDGE)
                 for p in python_files(EDGE)}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_definitions_imports_dagster_under_flywheel() -> None:
    orchestration = {"dagster", "dagster_ray", "dagster_aws", "dagster_webserver"}
    users = sorted(str(p.relative_to(ROOT)) for p in python_files(ROOT / "flywheel")
                   if imported_top_levels(p) & orchestration)
    assert users == ["flywheel/definitions.py"]


def test_importing_the_edge_agent_loads_no_heavy_module() -> None:
    modules = [p.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
               for p in python_files(EDGE) if p.name != "__main__.py"]
    modules = [m.removesuffix(".__init__") for m in modules]
    code = ("import importlib, json, sys\n"
            f"for m in {modules!r}:\n    importlib.import_module(m)\n"
            "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    loaded = set(json.loads(out.stdout))
    assert loaded & FORBIDDEN_FOR_EDGE == set()


@pytest.mark.slow
@pytest.mark.parametrize("extra", ["", "[federated]"])  # the Flower client must not bring torch/ray
def test_installing_the_edge_agent_alone_pulls_no_cloud_dependency(tmp_path: Path, extra: str) -> None:
    report = tmp_path / "report.json"
    src = tmp_path / "src"
    shutil.copytree(EDGE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
                    "--quiet", "--report", str(report), f"{src}{extra}"], check=True,
                   capture_output=True)
    names = {item["metadata"]["name"].lower().replace("_", "-")
             for item in json.loads(report.read_text())["install"]}
    assert "flywheel-edge-agent" in names and "onnxruntime" in names and "obstore" in names
    assert ("flwr" in names) == bool(extra)
    assert names & FORBIDDEN_DISTRIBUTIONS == set()


@pytest.mark.slow
def test_edge_agent_wheel_ships_every_subpackage(tmp_path: Path) -> None:
    # Build from a copy: setuptools leaves build/ and *.egg-info next to the sources it builds.
    src = tmp_path / "src"
    shutil.copytree(EDGE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w",
                    str(tmp_path), str(src)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("flywheel_edge_agent-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    expected = {"edge_agent/" + p.relative_to(EDGE).as_posix() for p in python_files(EDGE)
                if (p.parent / "__init__.py").exists()}
    assert expected - shipped == set(), "add the missing subpackages to edge_agent/pyproject.toml"


def test_no_test_hooks_ship_in_the_device_code() -> None:
    """Fault injection is an injected FaultHooks object (drivers under tests/support/), never an
    environment variable read in the agent's I/O path, and the fault-injecting lake is not shipped."""
    assert not (EDGE / "faults.py").exists()
    readers = sorted(str(p.relative_to(ROOT)) for p in python_files(EDGE)
                     if "TEST_STALL" in p.read_text() or "os.environ" in p.read_text())
    # the S3 credential chain, and Flower's usage telemetry switched off: neither is a test hook
    assert readers == ["edge_agent/federated/client.py", "edge_agent/lake.py"]
