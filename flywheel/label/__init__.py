"""Label: turn ingested Depot frames into training labels at a fraction of the human cost.

empty-background filter (`background`) -> pre-label ensemble (`prelabelers/`, `ensemble`) -> review
routing, tasks, corrections and merge (review half). `tables` fixes the Parquet interface between them.
"""
