"""The rollout stage's report window, kept incrementally: O(devices + new reports) per judgement.

Status keys are `landing/status/device=D/<ts>.json`: in time order per device, not across devices,
so a single start-after cursor over landing/status/ would miss a new report from a device that sorts
before it, and re-listing everything costs the whole history. The window instead keeps a cursor per
device (one delimiter listing finds the devices) and the cohorts' running per-device figures for the
current stage at `depot/rollout/<channel>/window.json` (atomic put). A new stage (a new channel.json
sequence) starts from empty figures; the cursors carry on, so no report is ever read twice.
A device whose clock steps back writes keys behind its cursor: those reports are not counted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from edge_agent.contract.errors import ContractError
from edge_agent.contract.ids import validate_id
from edge_agent.contract.layout import DEPOT, LANDING_STATUS
from edge_agent.contract.release import ReleaseChannelV1
from edge_agent.contract.schemas import StatusReportV2, parse_status_report
from edge_agent.lake import Lake, ObjectNotFound
from flywheel.release.health import Cohorts, Totals


def window_key(channel: str) -> str:
    return f"{DEPOT}/rollout/{validate_id(channel, 'channel')}/window.json"


def new_status_keys(lake: Lake, after: dict[str, str], limit_per_device: int | None = None
                    ) -> tuple[list[str], dict[str, str]]:
    """Status report keys past each device's cursor, and the moved cursors (device folder -> key).
    Costs one delimiter listing plus one listing per device that returns only what is new."""
    keys: list[str] = []
    moved = dict(after)
    for folder in lake.list_folders(LANDING_STATUS):
        prefix = f"{LANDING_STATUS}/{folder}"
        try:
            found = [i.key for i in lake.list(prefix, start_after=after.get(folder), limit=limit_per_device)]
        except ContractError:
            continue  # a folder name the lake refuses: no device can own it
        if found:
            keys += found
            moved[folder] = found[-1]
    return keys, moved


@dataclass
class Window:
    channel: str
    sequence: int = 0  # the channel.json sequence (stage) these figures belong to
    after: dict[str, str] = field(default_factory=dict)  # device folder -> last status key read
    cohorts: Cohorts = field(default_factory=Cohorts)
    reports: int = 0  # reports counted in this stage's window
    read: int = 0  # reports read by the last update (the O(new) part)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # last update: (key, reason)

    def to_json(self) -> bytes:
        return json.dumps({"channel": self.channel, "sequence": self.sequence, "after": self.after,
                           "reports": self.reports,
                           "cells": {name: getattr(self.cohorts, name).cells
                                     for name in ("canary", "control", "shadow")}},
                          sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Window:
        doc = json.loads(data)
        cohorts = Cohorts(**{name: Totals(cells=cells) for name, cells in doc["cells"].items()})
        return cls(channel=doc["channel"], sequence=int(doc["sequence"]), after=dict(doc["after"]),
                   cohorts=cohorts, reports=int(doc["reports"]))


def load_window(lake: Lake, channel: str) -> Window:
    try:
        return Window.from_json(lake.get(window_key(channel)))
    except ObjectNotFound:
        return Window(channel=channel)


def update_window(lake: Lake, channel: ReleaseChannelV1) -> Window:
    """Read the reports that are new since the last update into the current stage's window and
    save it. Reports from before the stage's channel.json was published are read but not counted."""
    window = load_window(lake, channel.channel)
    if window.sequence != channel.sequence:  # a new stage: fresh figures, same cursors
        window = Window(channel=channel.channel, sequence=channel.sequence, after=window.after)
    keys, window.after = new_status_keys(lake, window.after)
    window.read = len(keys)
    for key in keys:
        try:
            doc = parse_status_report(lake.get(key))
        except (ContractError, ObjectNotFound) as e:
            window.rejected.append((key, str(e)))
            continue
        if not isinstance(doc, StatusReportV2):
            window.rejected.append((key, "schema_version 1 carries no health figures"))
        elif doc.reported_at >= channel.published_at:
            window.cohorts.add(doc, channel)
            window.reports += 1
    lake.put(window_key(channel.channel), window.to_json())
    return window
