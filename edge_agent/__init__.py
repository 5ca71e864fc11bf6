"""Flywheel edge agent: runs on devices; owns the edge-cloud contract and the lake API.

Imports nothing from the cloud side (flywheel, assets, resources, jobs) and no heavy ML
framework; tests/test_layering.py enforces it.
"""
