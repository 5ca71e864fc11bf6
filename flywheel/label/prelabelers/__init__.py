"""Pre-labelers: one module each behind the small `Prelabeler` interface (see `base`)."""
