"""Software-defined assets, one module per stage. Thin: they call plain functions in flywheel/.
Each module's assets and checks reach the code location through its stage's `defs` in jobs/."""
