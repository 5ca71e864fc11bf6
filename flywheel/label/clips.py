"""Clip context for the Label stage: the sidecars the fleet uploaded next to each clip."""

from __future__ import annotations

from typing import Any

from edge_agent.contract.layout import CLIP_EXT, SIDECAR_EXT
from edge_agent.lake import Lake


def read_sidecars(lake: Lake, clip_keys: dict[str, str]) -> tuple[dict[str, Any], int]:
    """{clip_id: parsed sidecar} for the clips' `.mp4` keys; unreadable ones are left out (counted)."""
    from edge_agent.contract.schemas import parse_sidecar

    out, bad = {}, 0
    for clip_id, key in clip_keys.items():
        try:
            out[clip_id] = parse_sidecar(lake.get(key.removesuffix(CLIP_EXT) + SIDECAR_EXT))
        except Exception:  # noqa: BLE001 - missing, moved or malformed: the clip's labelers abstain
            bad += 1
    return out, bad
