"""Fault hooks: the points in the agent's I/O path where a test may intervene (stall, crash),
injected as an object instead of read from the environment. Production runs `NO_FAULTS`, whose
methods do nothing; fault drivers subclass `FaultHooks` under tests/support/. An instance crosses
into the encoder child process, so it must pickle (plain attributes, importable class)."""

from __future__ import annotations


class FaultHooks:
    def mid_encode(self) -> None:
        """Halfway through encoding a clip into the spool's temp file."""

    def between_clip_and_sidecar(self) -> None:
        """After a clip is uploaded, before its sidecar is."""


NO_FAULTS = FaultHooks()
