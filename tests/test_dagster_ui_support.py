"""The UI test servers' harness never waits open-ended: a wait past its deadline raises with what a
person needs to see why (runs, daemon health, the daemon's thread stacks, the server logs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flywheel.devstack.ports import free_port
from tests.support.dagster_ui import DagsterServers


def test_a_wait_past_its_deadline_reports_runs_health_stacks_and_logs(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    daemon_log = logs / "daemon.log"
    # a stand-in daemon: registers faulthandler as the harness's daemon does, then blocks
    with daemon_log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", "import faulthandler, signal, time; "
                                 "faulthandler.register(signal.SIGUSR1, all_threads=True); "
                                 "print('QueuedRunCoordinatorDaemon - Launched 2 runs.', flush=True); "
                                 "time.sleep(60)"], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "Launched" not in daemon_log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        servers = DagsterServers(free_port(), tmp_path / "home", logs, logs / "workspace.yaml", proc.pid)
        started = time.monotonic()
        with pytest.raises(TimeoutError) as err:
            servers.wait_for(lambda: None, 0.3, "backfill b1 finished", poll_s=0.1)
        assert time.monotonic() - started < 20  # the deadline held (plus the stack dump's pause)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    report = str(err.value)
    assert report.startswith("backfill b1 finished: not reached in 0 s")
    assert "--- runs: unavailable" in report and "--- daemon health: unavailable" in report  # no webserver
    assert "--- daemon.log" in report and "Launched 2 runs." in report
    assert "time.sleep(60)" in report or "<string>" in report  # the daemon's stack, by faulthandler
