"""Software-defined assets, one module per stage. Thin: they call plain functions in flywheel/."""
