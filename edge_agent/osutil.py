"""OS helpers the agent's worker threads share (capture, upload)."""

from __future__ import annotations

import os
import threading


def lower_thread_priority(niceness: int) -> None:
    """Linux gives every thread its own nice value: lower only the calling thread."""
    if niceness <= 0:
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + niceness))
    except (OSError, AttributeError):  # not permitted or not Linux: run at normal priority
        pass
