"""python-tuf's network layer over the lake API (file:// and s3:// alike), resumable.

URLs are `lake:<key>`. Bytes of every artifact download are appended to a partial file on disk as
they arrive; when a download breaks, the next attempt replays those bytes from disk and asks the
lake only for the rest (a range read). Artifacts are content-addressed (their sha256 is in the
key), so bytes already on disk for a URL can only belong to that artifact; TUF still verifies the
length and hashes of the whole file before anything uses it, and the updater discards a partial
that fails verification.

`bytes_fetched` counts what actually came over the network, the measure of resume efficiency.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from tuf.api import exceptions
from tuf.ngclient.fetcher import FetcherInterface

from edge_agent.lake import Lake, LakeError, ObjectNotFound

SCHEME = "lake:"
CHUNK = 1024 * 1024  # largest range read; also the unit of progress written to disk
MIN_CHUNK = 16 * 1024
# A dropped read loses at most the chunk in flight: with chunks of 1/64 of the artifact, three
# drops waste at most ~4.7 % of it (the OTA target is <= 5 % extra bytes with three drops).
CHUNKS_PER_ARTIFACT = 64
RESUMABLE_MIN = 64 * 1024  # small metadata files are fetched whole, never kept as partials


class LakeFetcher(FetcherInterface):
    """Fetch `lake:<key>` URLs. `write_hook(path, n_bytes)` runs before each chunk is written to a
    partial file (the place a disk-full condition surfaces; tests inject faults there)."""

    def __init__(self, lake: Lake, partial_dir: str | Path, *, chunk: int = CHUNK,
                 write_hook: Callable[[Path, int], None] | None = None) -> None:
        self.lake = lake
        self.partial_dir = Path(partial_dir)
        self.partial_dir.mkdir(parents=True, exist_ok=True)
        self.chunk = chunk
        self.write_hook = write_hook
        self.bytes_fetched = 0  # from the lake, this process
        self.fetched_by_key: Counter[str] = Counter()  # the same, per lake key
        self._limit: int | None = None

    @staticmethod
    def url(key: str) -> str:
        return SCHEME + key

    def partial_path(self, url: str) -> Path:
        return self.partial_dir / (hashlib.sha256(url.encode()).hexdigest()[:32] + ".part")

    def discard(self, url: str) -> None:
        self.partial_path(url).unlink(missing_ok=True)

    def discard_all(self) -> None:
        for p in self.partial_dir.glob("*.part"):
            p.unlink(missing_ok=True)

    def download_file(self, url: str, max_length: int):  # type: ignore[override]
        # The base class stops once more than max_length bytes arrived; knowing the limit here
        # keeps an endless target from being pulled (and stored) past it.
        self._limit = max_length
        return super().download_file(url, max_length)

    def _fetch(self, url: str) -> Iterator[bytes]:
        if not url.startswith(SCHEME):
            raise exceptions.DownloadError(f"{url}: not a lake: URL")
        key = url[len(SCHEME):]
        limit = self._limit
        self._limit = None
        try:
            size = self.lake.head(key).size
        except ObjectNotFound:
            raise exceptions.DownloadHTTPError(f"{url}: not found", 404) from None
        except LakeError as e:
            raise exceptions.DownloadError(f"{url}: lake unreachable: {e}") from e
        # Read at most one byte past the limit: enough for TUF to see "too long", no more.
        end = size if limit is None else min(size, limit + 1)
        if end < RESUMABLE_MIN:
            return self._whole(key, end)
        return self._resumable(url, key, end)

    def _whole(self, key: str, end: int) -> Iterator[bytes]:
        data = self.lake.get(key, 0, end) if end else b""
        self._count(key, len(data))
        yield data

    def _resumable(self, url: str, key: str, end: int) -> Iterator[bytes]:
        part = self.partial_path(url)
        have = part.stat().st_size if part.exists() else 0
        if have > end:  # cannot be this artifact: start over
            part.unlink()
            have = 0
        if have:
            with part.open("rb") as f:
                while block := f.read(self.chunk):
                    yield block
        step = min(max(end // CHUNKS_PER_ARTIFACT, MIN_CHUNK), self.chunk)
        with part.open("ab") as out:
            offset = have
            while offset < end:
                stop = min(offset + step, end)
                try:
                    data = self.lake.get(key, offset, stop)
                except LakeError as e:
                    raise exceptions.DownloadError(f"{url}: read [{offset}, {stop}) failed: {e}") from e
                self._count(key, len(data))
                try:
                    if self.write_hook is not None:
                        self.write_hook(part, len(data))
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())  # what is on disk after a power cut is really there
                except OSError as e:
                    if e.errno == errno.ENOSPC:
                        raise exceptions.DownloadError(f"{url}: disk full after {offset} bytes") from e
                    raise
                offset += len(data)
                yield data

    def _count(self, key: str, n: int) -> None:
        self.bytes_fetched += n
        self.fetched_by_key[key] += n


def channel_updater(state_dir: Path, channel: str, fetcher: LakeFetcher, trusted_root: bytes):
    """python-tuf's client for release channel `channel` in the lake: metadata kept under
    `state_dir/tuf/<channel>`, targets downloaded under `state_dir/targets` (OTA and round
    announcements read the same signed channel this way)."""
    from tuf.ngclient import Updater

    meta = state_dir / "tuf" / channel
    meta.mkdir(parents=True, exist_ok=True)
    base = f"releases/{channel}"
    return Updater(str(meta), LakeFetcher.url(f"{base}/metadata/"), str(state_dir / "targets"),
                   LakeFetcher.url(f"{base}/targets/"), fetcher=fetcher, bootstrap=trusted_root)
