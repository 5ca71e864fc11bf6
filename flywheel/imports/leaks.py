"""The same photo on both sides of the wall between training and frozen test sets: exact (sha256 of
the stored bytes) or near-duplicate (perceptual hash within NEAR_DUP_BITS: re-encoded, resized)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flywheel.imports.images import NEAR_DUP_BITS, phash, sha256


@dataclass(frozen=True)
class Leak:
    source: str  # the imported item
    other: str  # "<set>:<frame_id>" on the other side
    kind: str  # "exact" | "near-duplicate (pHash distance d)"


def fingerprints(images: list[bytes]) -> tuple[list[str], np.ndarray]:
    return [sha256(b) for b in images], np.stack([phash(b) for b in images])  # n x words


def find_leaks(new_sources: list[str], new_images: list[bytes],
               others: dict[str, tuple[list[str], list[bytes]]], max_bits: int = NEAR_DUP_BITS) -> list[Leak]:
    """Every new image that matches an image of `others` (set name -> (frame ids, image bytes))."""
    if not new_images:
        return []
    new_sha, new_ph = fingerprints(new_images)
    leaks: list[Leak] = []
    for name, (ids, images) in sorted(others.items()):
        if not images:
            continue
        sha, ph = fingerprints(images)
        exact = {s: i for i, s in enumerate(sha)}
        # n_new x n_other Hamming distances
        dist = np.bitwise_count(new_ph[:, None, :] ^ ph[None, :, :]).sum(axis=-1)
        for i, src in enumerate(new_sources):
            if new_sha[i] in exact:
                leaks.append(Leak(src, f"{name}:{ids[exact[new_sha[i]]]}", "exact"))
                continue
            j = int(dist[i].argmin())
            if dist[i, j] <= max_bits:
                leaks.append(Leak(src, f"{name}:{ids[j]}", f"near-duplicate (pHash distance {dist[i, j]})"))
    return leaks
