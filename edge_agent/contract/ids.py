"""Path safety: every id that becomes part of an object key passes through here first.

Ids (device, store, clip, model, channel, batch) are single key segments drawn from a small safe
alphabet, so no id can climb out of its prefix, hide a control character in a log line, or collide
with the `name=value` partition syntax in surprising ways.
"""

from __future__ import annotations

import re

from edge_agent.contract.errors import ContractError

MAX_ID_LEN = 128
MAX_KEY_LEN = 1024
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def _plain_text(value: object, field: str, max_len: int) -> str:
    """The checks ids and keys share: a non-empty string, bounded, with no control characters."""
    if not isinstance(value, str):
        raise ContractError(field, f"must be a string, got {type(value).__name__}")
    if value == "":
        raise ContractError(field, "must not be empty")
    if len(value) > max_len:
        raise ContractError(field, f"longer than {max_len} characters ({len(value)})")
    if _CONTROL_RE.search(value):
        raise ContractError(field, "contains a control character")
    return value


def validate_id(value: object, field: str = "id") -> str:
    """Return `value` if it is a safe id, else raise ContractError naming `field`."""
    value = _plain_text(value, field, MAX_ID_LEN)
    if "/" in value or "\\" in value:
        raise ContractError(field, f"contains a path separator: {value!r}")
    if ".." in value:
        raise ContractError(field, f"contains '..': {value!r}")
    if not _ID_RE.fullmatch(value):
        raise ContractError(
            field, f"{value!r} must start with a letter or digit and use only A-Z a-z 0-9 . _ -")
    return value


def validate_key(key: object, field: str = "key") -> str:
    """Return `key` if it is a safe relative object key ('a/b/c.json'), else raise ContractError."""
    key = _plain_text(key, field, MAX_KEY_LEN)
    if "\\" in key or "#" in key:
        raise ContractError(field, f"contains a backslash or '#': {key!r}")
    if key.startswith("/"):
        raise ContractError(field, f"must be relative, got {key!r}")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise ContractError(field, f"has an empty, '.' or '..' segment: {key!r}")
    return key
