"""The loop as a whole: per-turn figures of the flywheel (what each turn cost and bought), and the
demo's resumable progress. Plain Python; the turns are driven by jobs/demo.py."""
