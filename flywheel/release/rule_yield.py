"""Each capture rule's yield: labels accepted per MB uploaded, per capture day.

A rule set is only worth shipping if what its rules capture ends up as labels. The Depot knows, per
ingested clip, which rules fired (`triggers` in the frames table) and under which rule set
(`rule_set_version`, a campaign), and the bytes the device uploaded for it (clip + sidecar, from the
ledger's copy of the ingested sidecar); the Label stage's merged labels say which frames got an
accepted label. Joined on frame id -> clip, per rule:

    yield = accepted labels on its clips' frames / MB uploaded for those clips

A clip several rules fired on counts fully for each of them (the rules share the credit; the
`all rules` row counts it once). Written to `depot/yield/date=D/rule_yield.json`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass

from edge_agent.contract.errors import ContractError
from edge_agent.contract.layout import validate_date
from edge_agent.contract.schemas import parse_sidecar
from edge_agent.lake import Lake
from flywheel.depot.config import DEPOT
from flywheel.depot.ingest import read_frames
from flywheel.depot.ledger import ingested_sidecar

ALL = "all rules"
MB = 1_000_000


def yield_key(day: str) -> str:
    return f"{DEPOT}/yield/date={validate_date(day)}/rule_yield.json"


@dataclass
class RuleYield:
    rule: str
    rule_set_version: str
    clips: int = 0
    bytes_uploaded: int = 0
    frames: int = 0  # sampled frames of its clips in the Depot
    labels_accepted: int = 0  # merged labels (auto-accepted or human) on those frames
    item_labels: int = 0  # ... of which name a product (not "no product in the frame")

    @property
    def labels_per_mb(self) -> float:
        return self.labels_accepted / (self.bytes_uploaded / MB) if self.bytes_uploaded else 0.0

    def row(self) -> dict:
        return {**asdict(self), "mb_uploaded": round(self.bytes_uploaded / MB, 4),
                "labels_per_mb": round(self.labels_per_mb, 3)}


def _uploaded_bytes(lake: Lake, day: str, clip_id: str) -> int:
    """Clip + sidecar bytes as the device uploaded them (the ingested sidecar states the clip's)."""
    raw = ingested_sidecar(lake, day, clip_id)
    if raw is None:
        return 0
    try:
        return parse_sidecar(raw).clip.size_bytes + len(raw)
    except ContractError:
        return len(raw)


def rule_yield_day(lake: Lake, day: str, labels: dict[str, str | None]) -> list[RuleYield]:
    """Per (rule, rule set) yield of one capture day, best first, then the `all rules` total.
    `labels`: frame id -> accepted label (None: accepted as "no product")."""
    frames = read_frames(lake, day, columns=["frame_id", "clip_id", "triggers", "rule_set_version"])
    if frames is None:
        return []
    clip_rules: dict[str, tuple[list[str], str]] = {}
    clip_frames: dict[str, list[str]] = defaultdict(list)
    for r in frames.to_pylist():
        clip_rules[r["clip_id"]] = ([t for t in (r["triggers"] or "").split(",") if t] or ["(no trigger)"],
                                    r["rule_set_version"] or "")
        clip_frames[r["clip_id"]].append(r["frame_id"])
    out: dict[tuple[str, str], RuleYield] = {}
    total = RuleYield(ALL, "*")
    for clip_id, (rules, version) in sorted(clip_rules.items()):
        size = _uploaded_bytes(lake, day, clip_id)
        fids = clip_frames[clip_id]
        accepted = [labels[f] for f in fids if f in labels]
        for y in [out.setdefault((rule, version), RuleYield(rule, version)) for rule in rules] + [total]:
            y.clips += 1
            y.bytes_uploaded += size
            y.frames += len(fids)
            y.labels_accepted += len(accepted)
            y.item_labels += sum(a is not None for a in accepted)
    ranked = sorted(out.values(), key=lambda y: (-y.labels_per_mb, y.rule, y.rule_set_version))
    return [*ranked, total]


def write_rule_yield(lake: Lake, day: str, rows: list[RuleYield]) -> str:
    key = yield_key(day)
    lake.put(key, json.dumps([y.row() for y in rows], indent=1, sort_keys=True).encode())
    return key


def yield_markdown(rows: list[RuleYield]) -> str:
    lines = ["| rule | rule set | clips | MB uploaded | labels accepted | item labels | labels/MB |",
             "|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| `{y.rule.replace('|', '/')}` | {y.rule_set_version} | {y.clips} | "
              f"{y.bytes_uploaded / MB:.3f} | {y.labels_accepted} | {y.item_labels} | {y.labels_per_mb:.2f} |"
              for y in rows]
    return "\n".join(lines)
