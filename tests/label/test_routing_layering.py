"""Only the simulator, the simulated annotator and evaluation code may read ground truth: no import
chain (direct or through other modules, function-level imports included) leads from routing, the
review exports, the corrections intake, the merge or any pre-labeler to them."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# the simulator, the fleet driver that holds each frame's truth, the truth replay, the annotator
GROUND_TRUTH = ["flywheel.sim", "flywheel.fleet.runner", "flywheel.fleet.truth", "flywheel.label.annotator"]
NO_TRUTH = ["flywheel.label.routing", "flywheel.label.review_tasks", "flywheel.label.corrections",
            "flywheel.label.merge", "flywheel.label.tables", "flywheel.label.shelf", "flywheel.label.queue"]


def _prelabel_modules() -> list[str]:
    folder = ROOT / "flywheel" / "label" / "prelabelers"
    mods = [f"flywheel.label.prelabelers.{p.stem}" for p in sorted(folder.glob("*.py"))
            if p.stem != "__init__"]
    return mods + [m for m in ("flywheel.label.ensemble", "flywheel.label.background")
                   if (ROOT / Path(*m.split("."))).with_suffix(".py").exists()]


@pytest.fixture(scope="module")
def graph():
    import grimp

    return grimp.build_graph("flywheel", cache_dir=None)


@pytest.mark.parametrize("module", NO_TRUTH + _prelabel_modules())
def test_no_import_chain_to_ground_truth(graph, module: str) -> None:
    chains = {}
    for truth in GROUND_TRUTH:
        targets = [m for m in graph.modules if m == truth or m.startswith(truth + ".")]
        for t in targets:
            chain = graph.find_shortest_chain(importer=module, imported=t)
            if chain:
                chains[t] = " -> ".join(chain)
    assert chains == {}


def test_the_check_sees_the_annotator_reading_truth(graph) -> None:
    assert graph.find_shortest_chain(importer="flywheel.label.annotator", imported="flywheel.fleet.truth")


def test_the_check_sees_function_level_imports(graph) -> None:
    # the Learner's simulator import sits inside a function; the graph still has the chain
    assert graph.find_shortest_chain(importer="flywheel.learner.pipeline", imported="flywheel.sim",
                                     as_packages=True)
