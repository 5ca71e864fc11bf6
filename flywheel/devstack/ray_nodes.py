"""A real multi-node Ray cluster on this machine: a head and workers, each its own `ray start --block`
process on 127.0.0.1, every listener on a free port, all state under one temp dir.

Used by `make demo-cluster`, the cluster tests and benchmarks/bench_scale.py. Stopping kills only
this cluster's processes (its process groups, then any process whose command line names its temp
dir): never `ray stop`, which kills every Ray process on the machine, other sessions' clusters
included.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from flywheel.devstack.ports import free_ports

OBJECT_STORE_BYTES = 80 * 2**20  # the machine is shared: keep every node's object store small
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "YOLO_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}


def _port_flags(*names: str, worker_ports: int = 24) -> list[str]:
    """`--name=PORT` for each listener plus a private worker-port list (Ray's default 10002-19999 is
    shared by every cluster here), all distinct within the node."""
    ports = free_ports(len(names) + worker_ports)
    flags = [f"--{n}={p}" for n, p in zip(names, ports, strict=False)]
    return [*flags, f"--worker-port-list={','.join(map(str, ports[len(names):]))}"]


@dataclass
class RayNodes:
    """A running cluster. `address` is the GCS address (`ray.init(address=...)`), `jobs_url` the
    dashboard's job API (the Ray executor and run launcher submit there)."""

    temp_dir: Path
    address: str
    jobs_url: str
    env: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def add_worker(self, name: str, num_cpus: int = 1, resources: dict[str, float] | None = None,
                   timeout: float = 120, attempts: int = 3) -> str:
        """Start a worker node carrying the custom resource `name` (1 unit, so work can be
        pinned to it) plus `resources`; returns its node id once the head lists it. Ray gives a
        raylet 30 s to register (hard-coded); on a loaded machine that can pass: start it again."""
        for attempt in range(1, attempts + 1):
            try:
                return self._start_worker(name, num_cpus, resources, timeout)
            except RuntimeError:
                if attempt == attempts:
                    raise
                self._stop_one(name)
        raise AssertionError("unreachable")

    def _start_worker(self, name: str, num_cpus: int, resources: dict[str, float] | None,
                      timeout: float) -> str:
        before = {n["NodeID"] for n in self.nodes()}
        res = {name: 1.0, **(resources or {})}
        cmd = [_ray_bin(), "start", "--block", f"--address={self.address}",
               "--node-ip-address=127.0.0.1", f"--num-cpus={num_cpus}", "--num-gpus=0",
               f"--resources={json.dumps(res)}", f"--object-store-memory={OBJECT_STORE_BYTES}",
               *_port_flags("node-manager-port", "object-manager-port", "dashboard-agent-listen-port",
                            "dashboard-agent-grpc-port", "metrics-export-port",
                            "runtime-env-agent-port")]
        self.procs[name] = _spawn(cmd, self.env, self.temp_dir / f"{name}.log")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = [n for n in self.nodes() if n["NodeID"] not in before and n["Alive"]
                   and name in n.get("Resources", {})]
            if new:
                return new[0]["NodeID"]
            self._raise_if_dead(name)
            time.sleep(0.5)
        raise TimeoutError(f"Ray worker {name} did not join in {timeout:.0f}s; see "
                           f"{self.temp_dir / f'{name}.log'}")

    def _stop_one(self, name: str) -> None:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def nodes(self) -> list[dict]:
        """The head's node table (over the dashboard's REST API: no `ray.init` in this process)."""
        with urllib.request.urlopen(f"{self.jobs_url}/nodes?view=summary", timeout=10) as r:
            summary = json.load(r)["data"]["summary"]
        return [{"NodeID": n["raylet"]["nodeId"], "Alive": n["raylet"]["state"] == "ALIVE",
                 "Resources": n["raylet"].get("resourcesTotal", {}),
                 "IsHead": n["raylet"].get("isHeadNode", False)} for n in summary]

    def stop(self) -> None:
        for proc in self.procs.values():  # workers first, the head last
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        _kill_leftovers(str(self.temp_dir))
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def _raise_if_dead(self, name: str) -> None:
        if self.procs[name].poll() is not None:
            log = (self.temp_dir / f"{name}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"ray start for {name} exited {self.procs[name].returncode}:\n{log}")


@contextmanager
def ray_nodes(workers: int = 1, worker_cpus: int = 1, head_cpus: int = 0,
              worker_resources: list[dict[str, float]] | None = None,
              extra_env: dict[str, str] | None = None, timeout: float = 120) -> Iterator[RayNodes]:
    """A head (`head_cpus` CPUs: 0 means it schedules and workers compute, as on KubeRay) and
    `workers` workers named worker-1.. each with its custom resource; stopped on exit."""
    temp_dir = Path(tempfile.mkdtemp(prefix="rayn-", dir="/tmp"))  # short: Ray's socket paths
    env = {**os.environ, **RAY_ENV, **(extra_env or {})}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    gcs_port, dash_port = free_ports(2)
    cmd = [_ray_bin(), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
           f"--port={gcs_port}", f"--temp-dir={temp_dir}", f"--num-cpus={head_cpus}", "--num-gpus=0",
           f"--object-store-memory={OBJECT_STORE_BYTES}", "--include-dashboard=true",
           "--dashboard-host=127.0.0.1", f"--dashboard-port={dash_port}", "--disable-usage-stats",
           *_port_flags("ray-client-server-port", "node-manager-port", "object-manager-port",
                        "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                        "metrics-export-port", "runtime-env-agent-port")]
    nodes = RayNodes(temp_dir=temp_dir, address=f"127.0.0.1:{gcs_port}",
                     jobs_url=f"http://127.0.0.1:{dash_port}", env=env)
    # what the cluster deployment reads (resources/deployments.py): a step running as a Ray job on
    # a node finds the cluster the way a KubeRay pod's environment would tell it
    env.update({"FLYWHEEL_RAY_ADDRESS": nodes.address, "FLYWHEEL_RAY_JOBS_URL": nodes.jobs_url})
    nodes.procs["head"] = _spawn(cmd, env, temp_dir / "head.log")
    try:
        _wait_for_dashboard(nodes, timeout)
        for i in range(workers):
            nodes.add_worker(f"worker-{i + 1}", num_cpus=worker_cpus,
                             resources=(worker_resources or [{}] * workers)[i])
        yield nodes
    finally:
        nodes.stop()


def _wait_for_dashboard(nodes: RayNodes, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if any(n["Alive"] for n in nodes.nodes()):
                return
        except (OSError, KeyError, ValueError):
            pass
        nodes._raise_if_dead("head")
        time.sleep(0.5)
    raise TimeoutError(f"Ray head not up in {timeout:.0f}s; see {nodes.temp_dir / 'head.log'}")


def _ray_bin() -> str:
    return str(Path(sys.executable).parent / "ray")


def _spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _kill_leftovers(marker: str) -> None:
    """Ray workers and agents of this cluster that left the process groups (they name the temp dir
    or its session in their command line)."""
    me = os.getpid()
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit() or int(pid_dir.name) == me:
            continue
        try:
            cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            try:
                os.kill(int(pid_dir.name), signal.SIGKILL)
            except ProcessLookupError:
                pass
