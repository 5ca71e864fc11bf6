"""Benchmarks' scratch folders go away with the process (they once filled CI's disk)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _scratch_in_child(keep: bool) -> Path:
    code = ("from benchmarks.scratch import scratch_dir; "
            f"p = scratch_dir('bench-test-', keep={keep}); (p / 'f').write_text('x'); print(p)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def test_scratch_dir_removed_at_exit() -> None:
    assert not _scratch_in_child(keep=False).exists()


def test_scratch_dir_kept_on_request() -> None:
    path = _scratch_in_child(keep=True)
    assert (path / "f").read_text() == "x"
    (path / "f").unlink()
    path.rmdir()
