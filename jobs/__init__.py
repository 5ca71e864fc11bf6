"""One module per stage of the loop (see flywheel/definitions.py): each exposes
`defs(deployment) -> dg.Definitions` with the stage's assets (from assets/<stage>.py), checks, jobs,
sensors, schedules and the resources they need."""
