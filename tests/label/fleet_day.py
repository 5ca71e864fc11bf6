"""One simulated fleet day shared by the pre-label fleet tests (built once per test session)."""

from __future__ import annotations

DAY = "2026-11-24"
_BUILT: dict[str, object] = {}


def shared_fleet_day(tmp_path_factory):  # noqa: ANN001, ANN201
    """The day (benchmarks.label_fleet.FleetDay), built on first use in this process."""
    if "day" not in _BUILT:
        from benchmarks.label_fleet import build_fleet_day
        from edge_agent.lake import Lake

        root = tmp_path_factory.mktemp("label_fleet")
        _BUILT["day"] = build_fleet_day(Lake.at_path(root / "lake"), root / "work", carts=2, minutes=0.75,
                                        seed=3, day=DAY)
    return _BUILT["day"]
