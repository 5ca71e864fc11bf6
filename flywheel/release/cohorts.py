"""A release's cohort salt: a small fleet's canary is never empty (or the whole fleet) by chance.

Devices place themselves by `cohort_point(device, release, salt)`, uniform over devices, so a fleet
of n carts at a 50 % canary gets Binomial(n, 0.5) canaries: for 4 carts none in one release of 16,
and a rollout whose canary is empty waits for health reports that never come (bench_flywheel,
2026-12-03: held at canary after three shifts). The cloud knows the devices that report status:
when the plain point would put none or all of them in the canary (one cohort would never report),
it picks the first salt that puts round(percent x n) of them (at least one, one short of all) below
the percent. Otherwise the salt stays 0 and the channel is written as before. Devices it has not
heard from still place themselves uniformly; a salt is kept through the release's stages, so a
canary device stays in the ramp.
"""

from __future__ import annotations

from collections.abc import Collection

from edge_agent.contract.release import cohort_point

MAX_SALTS = 1000  # salts tried before the closest split found is taken


def wanted_size(n: int, percent: float) -> int:
    """Devices of `n` known ones a stage of `percent` should select (0 < percent < 100)."""
    return min(n - 1, max(1, round(percent / 100.0 * n)))


def cohort_salt(devices: Collection[str], release_id: str, percent: float) -> int:
    """0 (the plain point) for a full or empty stage, fewer than two devices, or when the plain
    point already puts some but not all of `devices` in a stage of `percent`; else the first salt
    under which `wanted_size` of them fall in it (the closest split when none of MAX_SALTS is)."""
    ids = sorted(set(devices))
    if not 0.0 < percent < 100.0 or len(ids) < 2:
        return 0
    if 0 < sum(cohort_point(d, release_id) < percent for d in ids) < len(ids):
        return 0
    want = wanted_size(len(ids), percent)
    best, best_miss = 0, len(ids)
    for salt in range(1, MAX_SALTS):  # salt 0 (the plain point) was just found wanting
        inside = sum(cohort_point(d, release_id, salt) < percent for d in ids)
        miss = abs(inside - want) + (len(ids) if inside in (0, len(ids)) else 0)
        if miss == 0:
            return salt
        if miss < best_miss:
            best, best_miss = salt, miss
    return best
