"""A real PostgreSQL server on a free loopback port, data in a temp dir (Debian's `postgresql`
package; `make test` installs it when missing). As root, the server runs as the `postgres` user
(initdb refuses root). Stopped with `pg_ctl stop`: only this server."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flywheel.devstack.ports import free_port


def pg_bindir() -> Path | None:
    """Debian puts the server binaries in /usr/lib/postgresql/<major>/bin, off PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    db: str

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.db}"

    def env(self) -> dict[str, str]:
        """What deploy/dagster.yaml reads (the cluster deployment's instance)."""
        return {"DAGSTER_PG_HOST": self.host, "DAGSTER_PG_PORT": str(self.port),
                "DAGSTER_PG_USER": self.user, "DAGSTER_PG_PASSWORD": "", "DAGSTER_PG_DB": self.db}

    def create_db(self, name: str) -> PostgresServer:
        """A fresh database on this server (one per test module keeps runs apart)."""
        bindir = pg_bindir()
        subprocess.run([str(bindir / "createdb"), "-h", self.host, "-p", str(self.port),
                        "-U", self.user, name], check=True, capture_output=True, timeout=60)
        return PostgresServer(self.host, self.port, self.user, name)


@contextmanager
def postgres(db: str = "dagster") -> Iterator[PostgresServer]:
    bindir = pg_bindir()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL server binaries not found (Debian package `postgresql`)")
    data = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))
    as_user = {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}
    if as_user:
        shutil.chown(data, "postgres", "postgres")
    port = free_port()
    run = {"check": True, "capture_output": True, "timeout": 120, **as_user}
    subprocess.run([str(bindir / "initdb"), "-D", str(data / "db"), "-U", "postgres",
                    "--auth=trust", "-E", "UTF8", "--no-instructions"], **run)
    opts = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run([str(bindir / "pg_ctl"), "-D", str(data / "db"), "-o", opts, "-l",
                    str(data / "server.log"), "-w", "-t", "60", "start"], **run)
    try:
        server = PostgresServer("127.0.0.1", port, "postgres", "postgres")
        yield server.create_db(db) if db != "postgres" else server
    finally:
        subprocess.run([str(bindir / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "-w", "stop"],
                       check=False, capture_output=True, timeout=60, **as_user)
        shutil.rmtree(data, ignore_errors=True)
