"""The encoder in its own OS process: no GIL shared with the inference loop, its own nice value.

A niced thread inside the agent's process can still hurt the loop: when the OS preempts it while it
holds the GIL (building a sidecar, converting a frame), the loop waits for it. A child process
removes that coupling. Frames travel through a reused shared-memory block (one memcpy per frame on
the worker thread, never on the loop); the child encodes, hashes and builds the sidecar,
and replies with the sidecar bytes. The child dies with its parent (PR_SET_PDEATHSIG) and is
restarted if it crashes; the capture in flight is then dropped and counted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import multiprocessing as mp
import os
import signal
import threading
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from edge_agent.capture.recorder import CaptureJob
from edge_agent.hooks import NO_FAULTS, FaultHooks

log = logging.getLogger(__name__)


class EncoderCrashed(RuntimeError):
    """The encoder process died or answered with an error."""


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's pipe closing ends us instead
        pass


def _child_main(conn: Connection, niceness: int, codec: str, threads: int, device_id: str,
                store_id: str, agent_version: str, hooks: FaultHooks, parent_pid: int) -> None:
    _die_with_parent()
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        return
    if niceness > 0:
        os.nice(niceness)
    from multiprocessing import shared_memory

    from edge_agent.capture.encoder import encode_clip
    from edge_agent.capture.sidecar import build_sidecar
    from edge_agent.contract import dump_document

    shm = None  # the parent's block, attached once and kept (its pages stay mapped)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        job, shm_name, shape, tmp = msg
        try:
            if shm is None or shm.name != shm_name:
                if shm is not None:
                    shm.close()
                # Attaching registers the name with the resource tracker this process shares with
                # the parent; the parent unlinks (and unregisters) the block when it replaces it.
                shm = shared_memory.SharedMemory(name=shm_name)
            frames = np.ndarray(shape, np.uint8, buffer=shm.buf)
            half = shape[0] // 2

            def at_frame(i: int, half: int = half) -> None:
                if i == half:
                    hooks.mid_encode()

            clip = encode_clip([frames[i] for i in range(shape[0])], [r.t for r in job.frames],
                               tmp, codec=codec, threads=threads, on_frame=at_frame)
            del frames
            data = Path(tmp).read_bytes()
            sidecar = build_sidecar(job, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                                    clip=clip, device_id=device_id, store_id=store_id,
                                    agent_version=agent_version)
            conn.send(("ok", len(data), dump_document(sidecar)))
        except Exception as e:  # report, keep serving
            conn.send(("error", f"{type(e).__name__}: {e}"))


class EncoderProcess:
    """A single long-lived child that encodes one capture at a time (called from one thread)."""

    def __init__(self, *, niceness: int, codec: str, threads: int, device_id: str, store_id: str,
                 agent_version: str, hooks: FaultHooks = NO_FAULTS) -> None:
        self._args = (niceness, codec, threads, device_id, store_id, agent_version, hooks)
        self._ctx = mp.get_context("spawn")  # never fork a process that runs native threads
        self._proc: mp.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self._shm = None
        self.restarts = 0

    def _ensure(self) -> Connection:
        if self._proc is None or not self._proc.is_alive():
            if self._proc is not None:
                self.restarts += 1
            parent, child = self._ctx.Pipe()
            self._proc = self._ctx.Process(target=_child_main, args=(child, *self._args, os.getpid()),
                                           name="edge-encoder", daemon=True)
            self._proc.start()
            child.close()
            self._conn = parent
        assert self._conn is not None
        return self._conn

    def encode(self, job: CaptureJob, tmp: Path) -> tuple[int, bytes]:
        """Encode the job's frames into `tmp`; returns (clip size, sidecar bytes)."""
        shape = (len(job.frames), *job.frames[0].image.shape)
        if any(r.image.shape != shape[1:] for r in job.frames):
            raise ValueError("frame size changed within a capture")
        with self._lock:
            conn = self._ensure()
            shm = self._block(int(np.prod(shape)))
            block = np.ndarray(shape, np.uint8, buffer=shm.buf)
            for i, r in enumerate(job.frames):
                block[i] = r.image
            del block
            light = dataclasses.replace(
                job, frames=[dataclasses.replace(r, image=None) for r in job.frames])
            try:
                conn.send((light, shm.name, shape, str(tmp)))
                reply = conn.recv()
            except (EOFError, OSError, BrokenPipeError) as e:
                self._kill()
                raise EncoderCrashed(f"encoder process died: {e}") from None
        if reply[0] != "ok":
            raise EncoderCrashed(reply[1])
        return int(reply[1]), reply[2]

    def _block(self, size: int):
        """One shared block reused across captures (fresh blocks cost a page fault per 4 KiB);
        replaced by a bigger one when a capture does not fit."""
        from multiprocessing import shared_memory

        if self._shm is None or self._shm.size < size:
            self._free_block()
            self._shm = shared_memory.SharedMemory(create=True, size=max(size, 1))
        return self._shm

    def _free_block(self) -> None:
        if self._shm is not None:
            self._shm.close()
            self._shm.unlink()
            self._shm = None

    def _kill(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.send(None)
                except (OSError, BrokenPipeError):
                    pass
            if self._proc is not None:
                self._proc.join(10)
                self._kill()
            self._proc = self._conn = None
            self._free_block()
