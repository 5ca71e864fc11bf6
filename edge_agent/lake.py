"""One small API over object storage: a local directory (`file://`) or S3 (`s3://bucket/prefix`).

Devices and the cloud use this same module. It is built on obstore (the Rust `object_store`
crate): puts are atomic on both backends (local writes go to a staging file and are renamed),
"only if absent" puts use the store's native conditional create (S3 `If-None-Match: *`), gets take
byte ranges, listings take a start-after cursor, and big objects go up as multipart uploads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from edge_agent.contract.ids import validate_key

# Objects at or above this size are uploaded in parts (S3 minimum part size is 5 MiB).
MULTIPART_THRESHOLD = 16 * 1024 * 1024
PART_SIZE = 8 * 1024 * 1024


class LakeError(Exception):
    """A lake operation failed; the message names the key and the reason."""


class ObjectNotFound(LakeError, KeyError):
    """The key does not exist."""

    def __str__(self) -> str:  # KeyError would repr-quote the message
        return str(self.args[0]) if self.args else "object not found"


class ObjectExists(LakeError):
    """A put with `if_absent=True` found the key already there."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str  # relative to the lake root, '/'-separated
    size: int  # bytes
    etag: str | None  # backend entity tag; for S3 single-part puts the MD5 in quotes
    last_modified: datetime


@dataclass(frozen=True)
class S3Options:
    """Connection settings for an S3-compatible server; unset fields come from AWS_* variables."""

    endpoint: str | None = None  # e.g. http://127.0.0.1:8333 for SeaweedFS; None = AWS
    access_key_id: str | None = None
    secret_access_key: str | None = None
    region: str | None = None
    allow_http: bool | None = None  # needed for plain-http endpoints; default: True if endpoint is http
    # The client's own retries cover blips; callers (the agent's uploader, Dagster's run retries)
    # own the long waits, so an outage surfaces as an error in seconds, not after minutes.
    max_retries: int = 3
    retry_timeout_s: float = 20.0  # give up retrying one request after this long
    connect_timeout_s: float = 5.0
    request_timeout_s: float = 300.0  # one request, e.g. an 8 MiB part on a slow uplink

    def store_kwargs(self) -> dict[str, Any]:
        env = os.environ
        endpoint = self.endpoint or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
        config: dict[str, Any] = {
            "region": self.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
            or "us-east-1",
        }
        if endpoint:
            config["endpoint"] = endpoint
        if self.access_key_id or env.get("AWS_ACCESS_KEY_ID"):
            config["access_key_id"] = self.access_key_id or env["AWS_ACCESS_KEY_ID"]
            config["secret_access_key"] = self.secret_access_key or env.get(
                "AWS_SECRET_ACCESS_KEY", "")
        allow_http = self.allow_http
        if allow_http is None:
            allow_http = bool(endpoint and endpoint.startswith("http://"))
        return {
            "config": config,
            "client_options": {"allow_http": allow_http,
                               "connect_timeout": timedelta(seconds=self.connect_timeout_s),
                               "timeout": timedelta(seconds=self.request_timeout_s)},
            "retry_config": {"max_retries": self.max_retries,
                             "retry_timeout": timedelta(seconds=self.retry_timeout_s),
                             "backoff": {"init_backoff": timedelta(milliseconds=100),
                                         "max_backoff": timedelta(seconds=5), "base": 2}},
        }


class Lake:
    """Keys are '/'-separated paths relative to the lake root; every key is validated first."""

    def __init__(self, uri: str, *, s3: S3Options | None = None) -> None:
        from obstore.store import LocalStore, S3Store

        self.uri = uri.rstrip("/")
        parsed = urlparse(self.uri)
        self._root: Path | None = None
        if parsed.scheme == "file":
            self._root = Path(unquote(parsed.path)).resolve()
            self._store = LocalStore(self._root, mkdir=True)
        elif parsed.scheme == "s3":
            if not parsed.netloc:
                raise LakeError(f"lake uri {uri!r}: s3:// needs a bucket")
            self._store = S3Store(parsed.netloc, prefix=parsed.path.strip("/") or None,
                                  **(s3 or S3Options()).store_kwargs())
        else:
            raise LakeError(f"lake uri {uri!r}: scheme must be file:// or s3://")
        self.s3 = s3

    @classmethod
    def at_path(cls, path: str | Path) -> Lake:
        return cls(Path(path).resolve().as_uri())

    def __repr__(self) -> str:
        return f"Lake({self.uri!r})"

    @property
    def is_local(self) -> bool:
        return self._root is not None

    def local_path(self, key: str = "") -> Path:
        """The filesystem path of a key in a `file://` lake (for tools that need real files)."""
        if self._root is None:
            raise LakeError(f"{self.uri} is not a local lake")
        return self._root / validate_key(key) if key else self._root

    def url(self, key: str = "") -> str:
        """The full URI of a key (what LanceDB, DuckDB or a log line wants)."""
        return f"{self.uri}/{validate_key(key)}" if key else self.uri

    # -- writes ---------------------------------------------------------------------------------

    def put(self, key: str, data: bytes | bytearray | memoryview, *, if_absent: bool = False
            ) -> ObjectInfo:
        """Write an object atomically. With `if_absent`, raise ObjectExists instead of replacing."""
        import obstore

        key = validate_key(key)
        data = bytes(data)
        if len(data) >= MULTIPART_THRESHOLD:
            return self._put_multipart(key, data, if_absent=if_absent)
        try:
            result = obstore.put(self._store, key, data, mode="create" if if_absent else "overwrite",
                                 use_multipart=False)
        except Exception as e:  # obstore raises its own hierarchy; translate once, here
            raise self._translate(e, key, "put") from e
        # No head round trip: the size is ours, the etag the store's; the time is this client's clock.
        return ObjectInfo(key=key, size=len(data), etag=result.get("e_tag"),
                          last_modified=datetime.now(UTC))

    def put_file(self, key: str, path: str | Path, *, if_absent: bool = False) -> ObjectInfo:
        """Upload a local file, in parts when large, without reading it all into memory."""
        path = Path(path)
        if path.stat().st_size < MULTIPART_THRESHOLD:
            return self.put(key, path.read_bytes(), if_absent=if_absent)
        with path.open("rb") as f:
            return self._put_multipart(validate_key(key), f, if_absent=if_absent)

    def _put_multipart(self, key: str, data: Any, *, if_absent: bool) -> ObjectInfo:
        import obstore

        # Multipart completion cannot be made conditional through obstore; a head check first is
        # enough for the keys we write this way (content-addressed: a racing writer writes the
        # same bytes).
        if if_absent and self.exists(key):
            raise ObjectExists(f"{self.uri}/{key}: already exists")
        try:
            obstore.put(self._store, key, data, use_multipart=True, chunk_size=PART_SIZE,
                        max_concurrency=4)
        except Exception as e:
            raise self._translate(e, key, "multipart put") from e
        return self.head(key)

    def delete(self, key: str) -> None:
        """Delete a key; deleting a missing key is not an error (idempotent cleanup)."""
        import obstore

        key = validate_key(key)
        try:
            obstore.delete(self._store, key)
        except FileNotFoundError:
            pass
        except Exception as e:
            err = self._translate(e, key, "delete")
            if not isinstance(err, ObjectNotFound):
                raise err from e

    # -- reads ----------------------------------------------------------------------------------

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        """Read a whole object, or bytes [start, end) of it."""
        import obstore

        key = validate_key(key)
        try:
            if start is None and end is None:
                return bytes(obstore.get(self._store, key).bytes())
            if start is None or start < 0 or (end is not None and end < start):
                raise LakeError(f"{self.uri}/{key}: bad byte range [{start}, {end})")
            if end is None:
                end = self.head(key).size
            if end == start:
                return b""
            return bytes(obstore.get_range(self._store, key, start=start, end=end))
        except LakeError:
            raise
        except Exception as e:
            raise self._translate(e, key, "get") from e

    def head(self, key: str) -> ObjectInfo:
        import obstore

        key = validate_key(key)
        try:
            meta = obstore.head(self._store, key)
        except Exception as e:
            raise self._translate(e, key, "head") from e
        return _info(meta)

    def exists(self, key: str) -> bool:
        try:
            self.head(key)
            return True
        except ObjectNotFound:
            return False

    def list(self, prefix: str = "", *, start_after: str | None = None,
             limit: int | None = None) -> Iterator[ObjectInfo]:
        """Objects under `prefix` in key order, strictly after `start_after` (a cursor).

        `prefix` is a folder ("landing/clips" or "landing/clips/"); the backend does the
        filtering, so a listing that resumes from a cursor costs O(new objects).
        """
        import obstore

        prefix = validate_key(prefix.rstrip("/")) if prefix.strip("/") else ""
        offset = validate_key(start_after) if start_after else None
        if offset is not None and prefix and offset < prefix:
            offset = None  # the cursor is before the prefix: list everything under it
        if self._root is not None:
            found = _walk_local(self._root, prefix, offset)
        else:
            found = (_info(meta) for chunk in obstore.list(self._store, prefix or None,
                                                           offset=offset, chunk_size=1000)
                     for meta in chunk)
        n = 0
        try:
            for info in found:
                yield info
                n += 1
                if limit is not None and n >= limit:
                    return
        except LakeError:
            raise
        except Exception as e:
            raise self._translate(e, prefix, "list") from e

    def list_folders(self, prefix: str) -> list[str]:
        """Names of the folders (common prefixes) directly under `prefix`, sorted: one delimiter
        listing, O(folders), never the objects inside them."""
        import obstore

        prefix = validate_key(prefix.rstrip("/"))
        if self._root is not None:
            try:
                return sorted(e.name for e in os.scandir(self._root / prefix) if e.is_dir())
            except (FileNotFoundError, NotADirectoryError):
                return []
        try:
            found = obstore.list_with_delimiter(self._store, prefix + "/")
        except Exception as e:
            raise self._translate(e, prefix, "list") from e
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in found["common_prefixes"])

    # -- names the checks refuse ----------------------------------------------------------------
    # A listing can return a key that `validate_key` refuses (another client wrote a backslash, a
    # control character, a '..' segment): the cloud must still be able to move it out of the way.

    def _unchecked_path(self, key: str) -> Path:
        assert self._root is not None
        path = Path(os.path.abspath(self._root / key))
        if path == self._root or self._root not in path.parents:
            raise LakeError(f"{self.uri}: {key!r} points outside the lake")
        return path

    def get_unchecked(self, key: str) -> bytes:
        """Read a key exactly as a listing returned it, without the key checks."""
        import obstore

        if self._root is not None:
            try:
                return self._unchecked_path(key).read_bytes()
            except FileNotFoundError:
                raise ObjectNotFound(f"{self.uri}/{key!r}: no such object") from None
        try:
            return bytes(obstore.get(self._store, key).bytes())
        except Exception as e:
            raise self._translate(e, repr(key), "get") from e

    def delete_unchecked(self, key: str) -> None:
        """Delete a key exactly as a listing returned it, without the key checks."""
        import obstore

        if self._root is not None:
            self._unchecked_path(key).unlink(missing_ok=True)
            return
        try:
            obstore.delete(self._store, key)
        except Exception as e:
            err = self._translate(e, repr(key), "delete")
            if not isinstance(err, ObjectNotFound):
                raise err from e

    # -- helpers --------------------------------------------------------------------------------

    def _translate(self, e: Exception, key: str, op: str) -> LakeError:
        from obstore import exceptions as oe

        where = f"{self.uri}/{key}"
        if isinstance(e, FileNotFoundError | oe.NotFoundError):
            return ObjectNotFound(f"{where}: no such object")
        if isinstance(e, oe.AlreadyExistsError | oe.PreconditionError | FileExistsError):
            return ObjectExists(f"{where}: already exists")
        first_line = str(e).splitlines()[0] if str(e) else type(e).__name__
        return LakeError(f"{where}: {op} failed: {first_line}")


def _info(meta: Mapping[str, Any]) -> ObjectInfo:
    return ObjectInfo(key=meta["path"], size=int(meta["size"]), etag=meta.get("e_tag"),
                      last_modified=meta["last_modified"])


def _walk_local(root: Path, prefix: str, start_after: str | None) -> Iterator[ObjectInfo]:
    """Files under `prefix` in S3 key order, pruning whole folders that sort before the cursor.

    object_store's local listing walks everything and does not sort, so a sensor resuming from a
    cursor would pay for the whole history on every tick; this walk pays only for the path down to
    the cursor and what follows it.
    """
    def walk(folder: Path, key_prefix: str) -> Iterator[ObjectInfo]:
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return
        # A folder's keys all start with "name/": sorting on that keeps global key order.
        ordered = sorted(((e.name + "/" if e.is_dir() else e.name), e) for e in entries)
        for sort_name, entry in ordered:
            key = key_prefix + sort_name
            if "#" in entry.name:  # object_store staging file of an in-flight put
                continue
            if entry.is_dir():
                if start_after is not None and key < start_after and not start_after.startswith(key):
                    continue  # everything inside sorts before the cursor
                yield from walk(Path(entry.path), key)
            elif start_after is None or key > start_after:
                st = entry.stat()
                yield ObjectInfo(key=key, size=st.st_size, etag=None,
                                 last_modified=datetime.fromtimestamp(st.st_mtime, UTC))

    base = root / prefix if prefix else root
    if base.is_file():
        return
    yield from walk(base, f"{prefix}/" if prefix else "")


def open_lake(uri: str, s3: S3Options | None = None) -> Lake:
    """A lake from a URI; a bare path is taken as a local directory."""
    if "://" not in uri:
        return Lake.at_path(uri)
    return Lake(uri, s3=s3)
