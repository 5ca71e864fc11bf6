"""Over-the-air updates: python-tuf's client over the lake, slot swap, probation, rollback."""
