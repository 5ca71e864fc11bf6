"""Fleet observability: a daily per-device (and per-store) rollup of status reports and clips.

Device discovery is one delimiter listing of `landing/status/device=*` (the folders, never the
reports inside them), so the rollup never lists the whole report history. A device's reports of a
day are the keys between `<YYYYMMDD>` and `<YYYYMMDD>~` (timestamp ids sort by time).
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from edge_agent.contract.errors import ContractError
from edge_agent.contract.layout import LANDING_STATUS
from edge_agent.contract.schemas import parse_status_report
from edge_agent.lake import Lake
from flywheel.depot.config import fleet_key


def list_devices(lake: Lake) -> list[str]:
    """The devices that have reported status, sorted: one delimiter listing, whatever the fleet's size."""
    prefix = "device="
    return [f.removeprefix(prefix) for f in lake.list_folders(LANDING_STATUS) if f.startswith(prefix)]


def last_report_key(lake: Lake, device: str, before_day: str) -> str | None:
    """The device's latest report key strictly before `before_day` ends (scan back day by day, a week)."""
    compact = before_day.replace("-", "")
    prefix = f"{LANDING_STATUS}/device={device}/"
    day = datetime.strptime(compact, "%Y%m%d")
    for back in range(8):
        d = (day - timedelta(days=back)).strftime("%Y%m%d")
        keys = [i.key for i in lake.list(prefix, start_after=prefix + d) if i.key < prefix + d + "~"]
        if keys:
            return keys[-1]
    return None


@dataclass
class DeviceDay:
    device_id: str
    store_id: str | None = None
    reports: int = 0
    bad_reports: int = 0
    last_report_at: datetime | None = None
    frames_processed: int = 0
    fires: Counter = field(default_factory=Counter)
    captures: int = 0
    drops: Counter = field(default_factory=Counter)
    capture_pauses: int = 0
    cleanups: int = 0
    uploaded_clips: int = 0
    uploaded_bytes: int = 0
    upload_seconds: float = 0.0  # sum over reports of uploaded_bytes / rate
    upload_failures: int = 0
    model_versions: set[str] = field(default_factory=set)
    agent_versions: set[str] = field(default_factory=set)
    latency_p99_ms: float = 0.0
    clips_landed: int = 0  # from the depot's frames table

    @property
    def drop_rate(self) -> float:
        dropped = sum(self.drops.values())
        return dropped / (dropped + self.captures) if dropped + self.captures else 0.0

    def row(self, day: str) -> dict[str, Any]:
        import json

        return {
            "date": day, "device_id": self.device_id, "store_id": self.store_id, "reports": self.reports,
            "bad_reports": self.bad_reports, "last_report_at": self.last_report_at,
            "frames_processed": self.frames_processed, "fire_counts": json.dumps(dict(self.fires)),
            "captures": self.captures, "drops": json.dumps(dict(self.drops)),
            "drops_total": sum(self.drops.values()), "drop_rate": round(self.drop_rate, 4),
            "capture_pauses": self.capture_pauses, "cleanups": self.cleanups,
            "uploaded_clips": self.uploaded_clips, "uploaded_bytes": self.uploaded_bytes,
            "upload_bytes_per_s": round(self.uploaded_bytes / self.upload_seconds, 1)
            if self.upload_seconds else 0.0,
            "upload_failures": self.upload_failures,
            "model_versions": ",".join(sorted(self.model_versions)),
            "agent_versions": ",".join(sorted(self.agent_versions)),
            "latency_p99_ms": self.latency_p99_ms, "clips_landed": self.clips_landed,
        }


@dataclass
class FleetRollup:
    day: str
    devices: list[DeviceDay]
    silent: list[str]  # devices that stopped reporting
    dropping: list[str]  # devices whose drop rate is over the threshold
    key: str = ""

    def by_store(self) -> list[dict[str, Any]]:
        stores: dict[str, dict[str, Any]] = {}
        for d in self.devices:
            s = stores.setdefault(d.store_id or "?", {"store_id": d.store_id or "?", "devices": 0,
                                                      "captures": 0, "drops": 0, "clips_landed": 0,
                                                      "uploaded_bytes": 0})
            s["devices"] += 1
            s["captures"] += d.captures
            s["drops"] += sum(d.drops.values())
            s["clips_landed"] += d.clips_landed
            s["uploaded_bytes"] += d.uploaded_bytes
        return sorted(stores.values(), key=lambda s: s["store_id"])

    def totals(self) -> dict[str, dict[str, int]]:
        """Fleet-wide counts: rule firings, drops by cause, devices per model version."""
        out: dict[str, Counter] = {"fires": Counter(), "drops": Counter(), "model_versions": Counter()}
        for d in self.devices:
            out["fires"].update(d.fires)
            out["drops"].update(d.drops)
            out["model_versions"].update(d.model_versions)
        return {k: dict(v) for k, v in out.items()}

    def by_store_markdown(self) -> str:
        return markdown_table(self.by_store(), ["store_id", "devices", "captures", "drops",
                                                "clips_landed", "uploaded_bytes"])

    def flagged_markdown(self) -> str:
        """The silent and the dropping devices, one row each."""
        flagged = set(self.silent) | set(self.dropping)
        rows = [d.row(self.day) for d in self.devices if d.device_id in flagged]
        return markdown_table(rows, ["device_id", "store_id", "reports", "last_report_at",
                                     "drop_rate", "drops"])


def markdown_table(rows: list[dict[str, Any]], cols: list[str], limit: int = 100) -> str:
    if not rows:
        return "none"
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows[:limit]]
    return "\n".join(out)


def rollup_day(lake: Lake, day: str, *, now: datetime | None = None, silence_s: float = 3600.0,
               max_drop_rate: float = 0.1) -> FleetRollup:
    """Roll up day `day`; a device is silent when its last report is older than `silence_s` at the
    end of the day (or at `now`, for today)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from flywheel.depot.ingest import read_frames

    now = now or datetime.now(UTC)
    end = min(datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=1), now)
    compact = day.replace("-", "")
    clips: Counter = Counter()
    stores: dict[str, str] = {}
    frames = read_frames(lake, day, columns=["clip_id", "device_id", "store_id"])
    if frames is not None:
        seen = set()
        for clip, dev, store in zip(*(frames.column(c).to_pylist() for c in ("clip_id", "device_id",
                                                                              "store_id")), strict=True):
            if clip not in seen:
                seen.add(clip)
                clips[dev] += 1
                stores[dev] = store
    devices = []
    silent, dropping = [], []
    for device in sorted(set(list_devices(lake)) | set(clips)):
        d = DeviceDay(device_id=device, store_id=stores.get(device), clips_landed=clips[device])
        prefix = f"{LANDING_STATUS}/device={device}/"
        for info in lake.list(prefix, start_after=prefix + compact):
            if info.key >= prefix + compact + "~":
                break
            try:
                rep = parse_status_report(lake.get(info.key))
            except ContractError:
                d.bad_reports += 1
                continue
            d.reports += 1
            d.store_id = d.store_id or rep.store_id
            d.last_report_at = max(filter(None, [d.last_report_at, rep.reported_at]))
            d.frames_processed += rep.frames_processed
            d.fires.update(rep.fire_counts)
            d.captures += rep.captures
            d.drops.update(rep.drops)
            d.capture_pauses += rep.capture_pauses
            d.cleanups += rep.cleanups
            d.uploaded_clips += rep.uploaded_clips
            d.uploaded_bytes += rep.uploaded_bytes
            if rep.upload_bytes_per_s > 0:
                d.upload_seconds += rep.uploaded_bytes / rep.upload_bytes_per_s
            d.upload_failures += rep.upload_failures
            d.model_versions.add(rep.model_version)
            d.agent_versions.add(rep.agent_version)
            d.latency_p99_ms = max(d.latency_p99_ms, rep.inference_latency_ms.p99)
        last = d.last_report_at
        if last is None:
            key = last_report_key(lake, device, day)
            if key is None and not d.clips_landed:
                continue  # nothing in the last week and no clips: not part of this day's fleet
            if key is not None:
                last = datetime.strptime(key.rsplit("/", 1)[-1][:-5], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
                d.last_report_at = last
        if last is None or (end - last).total_seconds() > silence_s:  # clips but no reports: silent too
            silent.append(device)
        if d.drop_rate > max_drop_rate:
            dropping.append(device)
        devices.append(d)
    rollup = FleetRollup(day, devices, silent, dropping, key=fleet_key(day))
    table = pa.Table.from_pylist([d.row(day) for d in devices]) if devices else pa.table({"date": []})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    lake.put(rollup.key, buf.getvalue())
    return rollup


def rollup_chart_markdown(rollup: FleetRollup, max_devices: int = 40) -> str:
    """A bar chart (captures and drops per device, flagged devices in red) as inline PNG markdown."""
    import base64

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    devices = sorted(rollup.devices, key=lambda d: (d.store_id or "", d.device_id))[:max_devices]
    if not devices:
        return "no devices"
    flagged = set(rollup.silent) | set(rollup.dropping)
    names = [d.device_id for d in devices]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(names) + 2), 2.8), dpi=90)
    x = range(len(names))
    ax.bar(x, [d.captures for d in devices], color="#4a90d9", label="captures")
    ax.bar(x, [sum(d.drops.values()) for d in devices], color="#e08a2c", label="drops")
    ax.set_xticks(list(x), names, rotation=60, ha="right", fontsize=7)
    for tick, name in zip(ax.get_xticklabels(), names, strict=True):
        if name in flagged:
            tick.set_color("red")
    ax.set_title(f"{rollup.day}: captures, drops (red: flagged)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return f"![fleet {rollup.day}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})"
