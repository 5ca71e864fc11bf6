"""A lineage IO manager that makes overlapping runs interleave for sure: every load of a reference
waits until all runs have stored theirs (a barrier), so run A trains only after run B's dataset
exists and evaluates only after B's candidate exists. With "latest" pointers this order hands A
the other run's dataset and candidate; with references each run keeps its own."""

from __future__ import annotations

import threading

import dagster as dg

from resources.lineage import LakeRefIOManager

BARRIERS: dict[str, threading.Barrier] = {}  # by name: resources are copied, barriers must not be


class LockstepRefIOManager(LakeRefIOManager):
    barrier: str  # key into BARRIERS

    def load_input(self, context: dg.InputContext):
        BARRIERS[self.barrier].wait(timeout=900)
        return super().load_input(context)
