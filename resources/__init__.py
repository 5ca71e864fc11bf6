"""Dagster resources: one per external system, each with a local and a cluster implementation."""
