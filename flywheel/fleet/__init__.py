"""Fleet runner: simulated carts (flywheel.sim) driven through real edge agents."""

from flywheel.fleet.runner import DEFAULT_RULES, FleetSummary, simulate_fleet

__all__ = ["DEFAULT_RULES", "FleetSummary", "simulate_fleet"]
