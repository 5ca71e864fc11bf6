"""Jobs, schedules, sensors and backfill helpers, one module per stage."""
