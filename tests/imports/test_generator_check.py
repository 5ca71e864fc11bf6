"""The simulator's frozen-set check is cached by the generator's fingerprint
(flywheel/imports/generator_check.py): an unchanged generator is not rendered again, a changed one is
and its drift is still reported."""

from __future__ import annotations

import shutil

import pytest

from flywheel.imports import generator_check
from flywheel.imports.sources import load_sources
from flywheel.learner.pipeline import SimSources

SMALL = SimSources(seed=0, n_per_sku=1, n_test=6, n_insertions=1)


def _render_fails(*_a, **_k):
    raise AssertionError("the generator ran although its fingerprint is recorded")


def test_unchanged_generator_is_not_rendered_again(local_lake, monkeypatch):
    first = load_sources(local_lake, "simulator", SMALL)
    monkeypatch.setattr(generator_check, "import_from_simulator", _render_fails)
    again = load_sources(local_lake, "simulator", SMALL)
    assert {n: (i.key, i.sha256, i.rows) for n, i in again.items()} == \
           {n: (i.key, i.sha256, i.rows) for n, i in first.items()}
    assert not any(i.drift_sha256 or i.created for i in again.values())
    # other settings are another generator: it runs
    with pytest.raises(AssertionError, match="the generator ran"):
        load_sources(local_lake, "simulator", SimSources(seed=0, n_per_sku=1, n_test=7, n_insertions=1))


def test_changed_generator_is_caught(local_lake, monkeypatch):
    """A new fingerprint (the simulator changed) renders again: drift in a frozen set is reported,
    the recorded version kept, and the answer (drift included) is what the cache returns next."""
    from flywheel.sim import export

    first = load_sources(local_lake, "simulator", SMALL)
    real = export.build_production_test_set

    def changed(store, seed, n, **kw):  # the "new code": a different test set for store A
        return real(store, seed + (store == "A"), n, **kw)

    monkeypatch.setattr(export, "build_production_test_set", changed)
    monkeypatch.setattr(generator_check, "fingerprint", lambda src: "changed-generator")
    drifted = load_sources(local_lake, "simulator", SMALL)
    assert drifted["store_A"].drift_sha256 and drifted["store_A"].sha256 == first["store_A"].sha256
    assert not drifted["store_B"].drift_sha256
    monkeypatch.setattr(generator_check, "import_from_simulator", _render_fails)
    assert load_sources(local_lake, "simulator", SMALL)["store_A"].drift_sha256 == \
           drifted["store_A"].drift_sha256


def test_fingerprint_follows_the_simulator_files(tmp_path):
    root = tmp_path / "sim"
    shutil.copytree(generator_check.SIM_ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    before = generator_check.fingerprint(SMALL, root)
    assert before == generator_check.fingerprint(SMALL, generator_check.SIM_ROOT)
    scene = root / "scene.py"
    scene.write_text(scene.read_text() + "\n# a changed renderer\n")
    assert generator_check.fingerprint(SMALL, root) != before
    assert generator_check.fingerprint(SimSources(seed=1), generator_check.SIM_ROOT) != \
           generator_check.fingerprint(SimSources(seed=0), generator_check.SIM_ROOT)
