"""Flywheel: the cloud side of the edge-to-cloud ML data flywheel (plain Python domain core)."""
