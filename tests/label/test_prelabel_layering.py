"""No pre-labeler, ensemble or filter code can reach ground truth: following every import (also
those inside functions) from those modules never arrives at the simulator or the fleet's truth."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GROUND_TRUTH = ("flywheel.sim", "flywheel.fleet.truth", "flywheel.fleet.runner")
LABEL_CODE = ["flywheel.label.background", "flywheel.label.ensemble", "flywheel.label.catalog",
              "flywheel.label.prelabel", "flywheel.label.clips", "flywheel.label.tables",
              *(f"flywheel.label.prelabelers.{p.stem}"
                for p in (ROOT / "flywheel/label/prelabelers").glob("*.py") if p.stem != "__init__")]


def _path(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.exists():
            return p
    return None


def _imports(module: str) -> set[str]:
    path = _path(module)
    if path is None:
        return set()
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in out if m.split(".")[0] in ("flywheel", "edge_agent") and _path(m)}


def reachable(start: str) -> dict[str, str]:
    """Every repo module importable from `start`, with the module that imported it."""
    seen, todo = {start: ""}, [start]
    while todo:
        m = todo.pop()
        for n in _imports(m):
            parent = n.rsplit(".", 1)[0]
            for x in (n, parent):
                if x not in seen and _path(x):
                    seen[x] = m
                    todo.append(x)
    return seen


def test_labelers_and_filter_cannot_reach_ground_truth() -> None:
    assert len(LABEL_CODE) >= 12
    for module in LABEL_CODE:
        assert _path(module), module
        bad = {m: by for m, by in reachable(module).items() if m.startswith(GROUND_TRUTH)}
        assert not bad, f"{module} reaches ground truth: {bad}"


def test_the_check_would_catch_a_leak() -> None:
    assert any(m.startswith("flywheel.sim") for m in reachable("flywheel.fleet.truth"))
