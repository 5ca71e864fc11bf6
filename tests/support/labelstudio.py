"""A real Label Studio server for tests: the one `make labelstudio-install` put in its own venv,
started on a free loopback port with a temporary data directory, an admin and a legacy API token
created without prompts, and stopped (its whole process group) after."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flywheel.devstack.ports import free_port

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO / "var" / "labelstudio" / "venv" / "bin" / "label-studio"
# migrated by `make labelstudio-install`: copying it saves the minutes of a first start's migrations
TEMPLATE_DB = REPO / "var" / "labelstudio" / "template" / "label_studio.sqlite3"


def label_studio_bin() -> Path | None:
    """The server's entry point: $FLYWHEEL_LABEL_STUDIO, else the make target's venv (None: absent)."""
    path = Path(os.environ.get("FLYWHEEL_LABEL_STUDIO", DEFAULT_BIN))
    return path if path.exists() else None


@dataclass
class StudioServer:
    url: str
    token: str
    username: str
    data_dir: Path
    started_s: float  # seconds until /health answered (migrations on a fresh data dir)


def studio_env(data_dir: Path, username: str, password: str, token: str) -> dict[str, str]:
    """What makes Label Studio start without a prompt, with a token the SDK can use."""
    return {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir), "LABEL_STUDIO_USERNAME": username,
            "LABEL_STUDIO_PASSWORD": password, "LABEL_STUDIO_USER_TOKEN": token,
            # since 1.20 a new organization accepts only personal access tokens (JWT) unless this is
            # set: a plain `Token <user token>` then gets 401
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true", "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "",
            "COLLECT_ANALYTICS": "false", "LATEST_VERSION_CHECK": "false"}


@contextmanager
def label_studio(data_dir: Path, binary: Path, *, timeout_s: float = 420.0) -> Iterator[StudioServer]:
    port = free_port()
    username, password, token = "admin@flywheel.local", secrets.token_hex(12), secrets.token_hex(20)
    if TEMPLATE_DB.exists():
        shutil.copyfile(TEMPLATE_DB, data_dir / TEMPLATE_DB.name)
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115 - closed in finally
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(binary), "start", "--host", "127.0.0.1", "--internal-host", "127.0.0.1", "--port", str(port),
         "--no-browser", "--data-dir", str(data_dir / "data"), "--username", username, "--password", password,
         "--user-token", token, "--enable-legacy-api-token"],
        env=studio_env(data_dir, username, password, token), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"Label Studio exited with {proc.returncode}: "
                                   f"{(data_dir / 'server.log').read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.perf_counter() - t0 > timeout_s:
                raise TimeoutError(f"Label Studio did not answer /health within {timeout_s:.0f} s")
            time.sleep(1.0)
        yield StudioServer(url, token, username, data_dir, time.perf_counter() - t0)
    finally:
        stop(proc)
        log.close()


def stop(proc: subprocess.Popen) -> None:
    """Stop the server's process group (it starts workers), TERM first."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass

