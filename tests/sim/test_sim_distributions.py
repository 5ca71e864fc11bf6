from __future__ import annotations

import numpy as np
import pytest

from flywheel.sim.export import (
    build_bootstrap_dataset,
    build_manual_test_set,
    build_production_test_set,
)


@pytest.fixture(scope="module")
def datasets(world):
    return {
        "bootstrap": build_bootstrap_dataset(0, n_per_sku=10, world=world),
        "manual": build_manual_test_set(1, n=150, empty_fraction=0.0, world=world),
        **{
            s: build_production_test_set(s, 1, n=100, empty_fraction=0.0, world=world)
            for s in world.store_names
        },
    }


def _grey(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _laplacian_var(img: np.ndarray) -> float:
    g = _grey(img)
    g = g.reshape(120, 2, 160, 2).mean(axis=(1, 3))  # 2x2 binning: edges, not pixel noise
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4 * g[1:-1, 1:-1]
    return float(lap.var())


def test_store_specific_skus_never_in_manual_data(world, datasets):
    special = {p.ean for p in world.catalog if p.store_specific_to is not None}
    for name in ("bootstrap", "manual"):
        skus = {f.truth.sku for f in datasets[name] if f.truth.sku}
        assert skus and skus.isdisjoint(special)
        assert all(f.distribution == "manual" and f.store == "manual" for f in datasets[name])
    prod_special = set()
    for s in world.store_names:
        skus = {f.truth.sku for f in datasets[s] if f.truth.sku}
        own = {p.ean for p in world.catalog.store_specific(s)}
        assert (skus & special) <= own  # another store's specials never show up
        prod_special |= skus & own
    assert prod_special  # production does contain never-seen SKUs


def test_bootstrap_is_balanced_over_core_skus(world, datasets):
    boot = datasets["bootstrap"]
    counts: dict[str, int] = {}
    for f in boot:
        if f.truth.sku:
            counts[f.truth.sku] = counts.get(f.truth.sku, 0) + 1
    assert set(counts) == {p.ean for p in world.catalog.core}
    assert set(counts.values()) == {10}
    assert sum(f.truth.is_empty for f in boot) == round(0.1 * 210)


def test_manual_frames_brighter_and_sharper_than_production(world, datasets):
    def stats(frames):
        return (
            float(np.mean([_grey(f.device.image).mean() for f in frames])),
            float(np.mean([_laplacian_var(f.device.image) for f in frames])),
        )

    m_bright, m_sharp = stats(datasets["manual"])
    for s in world.store_names:
        p_bright, p_sharp = stats(datasets[s])
        assert m_bright > p_bright + 10, (s, m_bright, p_bright)
        assert m_sharp > 1.5 * p_sharp, (s, m_sharp, p_sharp)
    conds = np.array([[f.truth.conditions[k] for k in ("low_light", "defocus", "noise")]
                      for f in datasets["manual"]])
    assert conds.max() < 0.1


def _features(frames) -> np.ndarray:
    """64-bin colour histogram of the item crop (boxes from truth: we test the data, not a
    detector)."""
    out = []
    for f in frames:
        x1, y1, x2, y2 = (int(v) for v in f.truth.item_box)
        crop = f.device.image[y1:y2, x1:x2] // 64
        idx = crop[..., 0].astype(int) * 16 + crop[..., 1] * 4 + crop[..., 2]
        h = np.bincount(idx.ravel(), minlength=64).astype(np.float32)
        out.append(h / h.sum())
    return np.stack(out)


def test_production_is_measurably_harder_for_a_manual_trained_classifier(world, datasets):
    train = [f for f in datasets["bootstrap"] if f.truth.sku]
    y = np.array([f.truth.sku for f in train])
    classes = sorted(set(y))
    X = _features(train)
    centroids = np.stack([X[y == c].mean(axis=0) for c in classes])

    def accuracy(frames) -> float:
        Xt = _features(frames)
        d = ((Xt[:, None, :] - centroids[None]) ** 2).sum(axis=-1)
        pred = np.array(classes)[d.argmin(axis=1)]
        return float((pred == np.array([f.truth.sku for f in frames])).mean())

    core = set(classes)
    manual_acc = accuracy([f for f in datasets["manual"] if f.truth.sku])
    prod = [f for s in world.store_names for f in datasets[s] if f.truth.sku in core]
    prod_acc = accuracy(prod)
    chance = 1 / len(classes)
    print(f"nearest-centroid: manual {manual_acc:.3f}, production {prod_acc:.3f}, chance {chance:.3f}")
    assert manual_acc > 5 * chance
    assert manual_acc - prod_acc >= 0.15
