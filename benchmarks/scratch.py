"""Scratch folders for benchmarks, removed when the process exits.

A benchmark's work folder holds lakes, clips and model runs (gigabytes over a session); left in /tmp
they filled the disk of the machine CI runs on. Pass `keep=True` only while debugging.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path


def scratch_dir(prefix: str, keep: bool = False) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if not keep:
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
