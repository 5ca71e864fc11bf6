"""The Dagster webserver, daemon and code server as real processes on free loopback ports, for the
UI, GraphQL and browser tests: what `make ui` (`dagster dev`) gives a user, on a temp DAGSTER_HOME
with the product's instance config (jobs.instance: the run queue)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from flywheel.devstack.ports import free_port

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
READY = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }"


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    """POST one query; GraphQL errors raise (with the server's message)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql",
                                 data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        body = json.loads(resp.read())
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    return body["data"]


RUNS = "{ runsOrError(limit: 20) { ... on Runs { results { runId status jobName tags { key value } } } } }"
DAEMONS = """{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required
    lastHeartbeatTime lastHeartbeatErrors { message } } } } }"""
LOG_TAIL = 6000  # characters of each server log in a failure report


@dataclass
class DagsterServers:
    port: int
    home: Path
    logs: Path
    workspace: Path  # the code server's workspace file (webserver and daemon load it)
    daemon_pid: int | None = None  # set while `daemon()` runs: its threads are dumped on a timeout

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        return graphql(self.port, query, variables)

    def diagnostics(self) -> str:
        """What a person needs when a wait on these servers times out: the runs and their statuses,
        the daemons' health, every daemon thread's Python stack (faulthandler, SIGUSR1) and the tail
        of the daemon and webserver logs."""
        parts = []
        for name, query in (("runs", RUNS), ("daemon health", DAEMONS)):
            try:
                parts.append(f"--- {name}: {json.dumps(self.graphql(query))}")
            except Exception as exc:  # noqa: BLE001 - a report of a failure must not fail itself
                parts.append(f"--- {name}: unavailable ({exc!r})")
        if self.daemon_pid is not None:
            try:  # the daemon's faulthandler writes all its threads' stacks into daemon.log
                os.kill(self.daemon_pid, signal.SIGUSR1)
                time.sleep(2)
            except ProcessLookupError:
                parts.append("--- dagster-daemon is not running")
        for log in sorted(self.logs.glob("*.log")):
            parts.append(f"--- {log.name} (last {LOG_TAIL} characters)\n"
                         + log.read_text(errors="replace")[-LOG_TAIL:])
        return "\n".join(parts)

    def wait_for(self, predicate: Callable[[], T | None], timeout_s: float, what: str,
                 poll_s: float = 2.0) -> T:
        """Poll `predicate()` until it returns a truthy value; past `timeout_s`, raise TimeoutError
        carrying `diagnostics()`. No wait on these servers is open-ended."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not reached in {timeout_s:.0f} s\n{self.diagnostics()}")
            time.sleep(poll_s)


@contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    # Its own session: the server and its code-server children stop together (a plain SIGTERM to
    # the parent alone leaves them running).
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            yield proc
        finally:
            _stop_group(proc)


def _stop_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:  # the whole group is gone already
            return
        try:
            proc.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            continue
    raise RuntimeError(f"process {proc.pid} ({proc.args[:4]}) survived SIGKILL for 30 s")


def write_instance_yaml(home: Path) -> None:
    """The instance `make ui` and `make demo` write (jobs.instance: no telemetry, the run queue)."""
    from jobs.instance import write_instance_yaml as product_instance

    product_instance(home, overwrite=True)


LOCATION = "flywheel.definitions"  # workspace.yaml's python_module, the location's name there


def _wait_for_code_server(port: int, proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    from dagster._core.errors import DagsterUserCodeUnreachableError
    from dagster._grpc.client import DagsterGrpcClient

    client = DagsterGrpcClient(port=port, host="127.0.0.1")
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the code server exited:\n{log.read_text(errors='replace')[-LOG_TAIL:]}")
        try:
            client.get_server_id(timeout=10)  # the proxy listens once the definitions have loaded
            return
        except DagsterUserCodeUnreachableError:  # not listening yet
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the code server did not load {LOCATION} in {timeout_s:.0f} s:\n"
                               + log.read_text(errors="replace")[-LOG_TAIL:])
        time.sleep(1)


@contextmanager
def code_server(env: dict[str, str], logs: Path, timeout_s: float = 300) -> Iterator[Path]:
    """One long-lived code server for the location, shared by the webserver and the daemon, as
    `dagster dev` (`make ui`) runs them; yields the workspace file that points at it.

    Not each process loading workspace.yaml's python_module itself: the daemon then spawns its own
    code server and replaces it every 60 s (the old one exits 20 s after its last heartbeat), and
    every run launch goes through whichever one is current; under heavy CPU load that churn (a
    fresh import of the definitions each minute) is where launches stall or fail."""
    port = free_port()
    log = logs / "code_server.log"
    with _process([sys.executable, "-m", "dagster", "code-server", "start", "-m", LOCATION, "-d", str(ROOT),
                   "-h", "127.0.0.1", "-p", str(port), "--location-name", LOCATION], env, log) as proc:
        _wait_for_code_server(port, proc, log, timeout_s)
        workspace = logs / "workspace.yaml"
        workspace.write_text(json.dumps({"load_from": [{"grpc_server": {
            "host": "127.0.0.1", "port": port, "location_name": LOCATION}}]}))  # JSON is YAML
        yield workspace


@contextmanager
def webserver(home: Path, env: dict[str, str], timeout_s: float = 180) -> Iterator[DagsterServers]:
    """dagster-webserver on the code server's workspace; yields once GraphQL shows the location."""
    port = free_port()
    env = {**os.environ, **env, "DAGSTER_HOME": str(home)}
    logs = home.parent / f"{home.name}-logs"  # not under DAGSTER_HOME: the instance owns that
    logs.mkdir(parents=True, exist_ok=True)
    with code_server(env, logs) as workspace, \
            _process([sys.executable, "-m", "dagster_webserver", "-w", str(workspace), "-h", "127.0.0.1",
                      "-p", str(port)], env, logs / "webserver.log") as proc:
        servers = DagsterServers(port, home, logs, workspace)
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"dagster-webserver exited, see {logs / 'webserver.log'}")
            try:  # ready once the code location has loaded
                if servers.graphql(READY)["repositoriesOrError"].get("nodes"):
                    break
            except (OSError, KeyError, RuntimeError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the Dagster webserver did not load the code location in "
                                   f"{timeout_s:.0f} s\n{servers.diagnostics()}")
            time.sleep(1)
        yield servers


# `dagster-daemon run`, with faulthandler on SIGUSR1: a stalled daemon shows where each thread waits.
DAEMON_MAIN = ("import faulthandler, signal, sys; faulthandler.register(signal.SIGUSR1, all_threads=True); "
               "sys.argv = ['dagster-daemon', 'run', '-w', sys.argv[1]]; "
               "from dagster._daemon.cli import main; main()")


@contextmanager
def daemon(servers: DagsterServers, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """dagster-daemon on the same workspace and instance (it launches queued runs and backfills)."""
    env = {**os.environ, **env, "DAGSTER_HOME": str(servers.home)}
    with _process([sys.executable, "-c", DAEMON_MAIN, str(servers.workspace)], env,
                  servers.logs / "daemon.log") as proc:
        servers.daemon_pid = proc.pid
        try:
            yield proc
        finally:
            servers.daemon_pid = None


STOP = {
    "sensors": ("sensorState", """mutation($id: String, $sel: String) { result: stopSensor(id: $id,
        jobSelectorId: $sel) { ... on StopSensorMutationResult { instigationState { status } }
        ... on PythonError { message } } }""", "instigationState"),
    "schedules": ("scheduleState", """mutation($id: String, $sel: String) { result: stopRunningSchedule(
        id: $id, scheduleSelectorId: $sel) { ... on ScheduleStateResult { scheduleState { status } }
        ... on PythonError { message } } }""", "scheduleState"),
}


def stop_automation(servers: DagsterServers) -> list[str]:
    """Turn every sensor and schedule off, as a user does with their toggles in the UI; returns their
    names. (A fresh instance would otherwise run them as soon as a daemon starts.)"""
    data = servers.graphql("""{ repositoriesOrError { ... on RepositoryConnection { nodes {
        sensors { name sensorState { id selectorId } } schedules { name scheduleState { id selectorId } }
        } } } }""")
    (repo,) = data["repositoriesOrError"]["nodes"]
    stopped = []
    for kind, (state_field, mutation, result_field) in STOP.items():
        for inst in repo[kind]:
            state = inst[state_field]
            out = servers.graphql(mutation, {"id": state["id"], "sel": state["selectorId"]})["result"]
            if (out.get(result_field) or {}).get("status") != "STOPPED":
                raise RuntimeError(f"could not stop {inst['name']}: {out}")
            stopped.append(inst["name"])
    return stopped


def chromium_missing() -> str | None:
    """Why a browser test cannot run here (None when it can): Debian's chromium + chromium-driver and
    selenium, installed by `make test`; browsers never download themselves here."""
    import importlib.util
    import shutil

    missing = [n for n in ("chromium", "chromedriver") if shutil.which(n) is None]
    if importlib.util.find_spec("selenium") is None:
        missing.append("selenium")
    return f"{', '.join(missing)} not installed (make test installs them)" if missing else None


@contextmanager
def chromium(width: int = 1600, height: int = 1100) -> Iterator:
    """Headless Debian Chromium driven by selenium through the system chromedriver."""
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
