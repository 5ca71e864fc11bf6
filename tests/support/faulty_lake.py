"""A fault-injecting lake: wraps a real Lake and misbehaves on purpose (tests and benchmarks).

Faults, chosen per call from a seeded RNG or forced with `down`:
- "error":    the call fails before anything reaches the store (store down, DNS, refused)
- "cut":      a put writes a truncated object, then fails (a non-atomic store losing the connection)
- "garble":   a put writes flipped bytes and reports success (a corrupting proxy)
- "lost_ack": a put succeeds on the store but the client sees a failure (timeout after commit)
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator

from edge_agent.lake import Lake, LakeError, ObjectInfo

FAULTS = ("error", "cut", "garble", "lost_ack")


class FaultyLake:
    def __init__(self, inner: Lake, *, rate: float = 0.0, faults: tuple[str, ...] = FAULTS,
                 seed: int = 0, read_faults: bool = True) -> None:
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}")
        self.inner, self.rate, self.faults, self.read_faults = inner, rate, faults, read_faults
        self.down = False  # when True every call fails ("store down")
        self.injected: Counter = Counter()
        self.puts: Counter = Counter()  # key -> successful puts that reached the store
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def __getattr__(self, name: str):  # uri, url, is_local, local_path ... pass through
        return getattr(self.inner, name)

    def _pick(self) -> str | None:
        with self._lock:
            if self.down:
                self.injected["down"] += 1
                return "down"
            if self.rate > 0 and self._rng.random() < self.rate:
                f = self._rng.choice(self.faults)
                self.injected[f] += 1
                return f
        return None

    def put(self, key: str, data, *, if_absent: bool = False) -> ObjectInfo:
        data = bytes(data)
        fault = self._pick()
        if fault in ("down", "error"):
            raise LakeError(f"{key}: injected fault: {fault}")
        if fault == "cut":
            cut = data[: max(0, len(data) // 3)]
            try:
                self.inner.put(key, cut, if_absent=if_absent)
            except LakeError:
                pass
            raise LakeError(f"{key}: injected fault: connection cut after {len(cut)} bytes")
        if fault == "garble" and data:
            bad = bytearray(data)
            for i in range(0, len(bad), max(1, len(bad) // 8)):
                bad[i] ^= 0x5A
            info = self.inner.put(key, bytes(bad), if_absent=if_absent)
            return ObjectInfo(key, len(data), None, info.last_modified)  # lies about the size too
        info = self.inner.put(key, data, if_absent=if_absent)
        with self._lock:
            self.puts[key] += 1
        if fault == "lost_ack":
            raise LakeError(f"{key}: injected fault: ack lost after commit")
        return info

    def put_file(self, key: str, path, *, if_absent: bool = False) -> ObjectInfo:
        with open(path, "rb") as f:
            return self.put(key, f.read(), if_absent=if_absent)

    def _read_fault(self, key: str) -> None:
        if not self.read_faults:
            with self._lock:
                if self.down:
                    raise LakeError(f"{key}: injected fault: down")
            return
        fault = self._pick()
        if fault in ("down", "error", "cut"):
            raise LakeError(f"{key}: injected fault on read: {fault}")

    def head(self, key: str) -> ObjectInfo:
        self._read_fault(key)
        return self.inner.head(key)

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        self._read_fault(key)
        return self.inner.get(key, start, end)

    def exists(self, key: str) -> bool:
        self._read_fault(key)
        return self.inner.exists(key)

    def list(self, prefix: str = "", **kw) -> Iterator[ObjectInfo]:
        self._read_fault(prefix)
        return self.inner.list(prefix, **kw)

    def delete(self, key: str) -> None:
        self._read_fault(key)
        self.inner.delete(key)
