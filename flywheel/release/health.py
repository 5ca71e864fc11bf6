"""Health gates for a staged rollout, from the devices' status reports (StatusReportV2).

Devices running the candidate release form the canary cohort, devices of the same channel still on
the previous release the control cohort; both are summed over the same window. The statistical
test is a one-sided two-proportion z-test (pooled variance): "is the canary's rate worse than the
control's?" at significance `alpha`, AND by more than a practical margin (a tiny but significant
difference on a huge fleet does not halt a release). It is applied to barcode agreement (top-1 vs
the barcode read on the same insertion), the low-confidence rate, weight-inconsistent predictions
crashes and restarts per frame. Latency and validation failures are absolute limits. Shadow devices are
judged on their agreement with production.

Each check carries `actual` and `threshold`; the decision is "advance", "hold" (not enough data
yet) or "halt" (a check failed: roll back).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from edge_agent.contract.release import ReleaseChannelV1
from edge_agent.contract.schemas import StatusReportV2

# Default stages: shadow on 10 %, canary 5 %, then 25 %, 50 %, 100 %
DEFAULT_STAGE_SPECS = ("shadow:0:10", "canary:5", "ramp:25", "ramp:50", "full:100")


def parse_stages(specs: list[str] | tuple[str, ...]) -> tuple[tuple[str, float, float], ...]:
    """Rollout stages from config strings "stage:percent[:shadow_percent]", e.g. ["shadow:0:10",
    "canary:5", "ramp:25", "ramp:50", "full:100"]. Percentages never go down; the last is full 100."""
    out = []
    for spec in specs:
        parts = spec.split(":")
        try:
            stage, pct, shadow = parts[0], float(parts[1]), float(parts[2]) if len(parts) > 2 else 0.0
        except (IndexError, ValueError):
            raise ValueError(f"rollout stage {spec!r}: expected 'stage:percent[:shadow_percent]'") from None
        if stage not in ("shadow", "canary", "ramp", "full") or not (0 <= pct <= 100 and 0 <= shadow <= 100):
            raise ValueError(f"rollout stage {spec!r}: stage must be shadow/canary/ramp/full and "
                             "percentages in 0..100")
        if out and pct < out[-1][1]:
            raise ValueError(f"rollout stage {spec!r}: percent goes down after {out[-1][1]:g}")
        out.append((stage, pct, shadow))
    if not out or out[-1][:2] != ("full", 100.0):
        raise ValueError("rollout stages must end with 'full:100'")
    return tuple(out)


DEFAULT_STAGES = parse_stages(list(DEFAULT_STAGE_SPECS))  # (stage, percent, shadow_percent)


@dataclass(frozen=True)
class GateConfig:
    alpha: float = 0.01  # one-sided significance of "canary worse than control"
    agreement_margin: float = 0.02  # barcode agreement may drop at most this much (absolute)
    low_conf_margin: float = 0.05  # low-confidence rate may rise at most this much
    weight_margin: float = 0.02  # weight-inconsistent rate may rise at most this much
    crash_margin: float = 0.001  # crashes per frame may rise at most this much
    min_barcode_checks: int = 100  # per cohort, before agreement is judged (else hold)
    min_frames: int = 1000  # per cohort, before crash rates are judged (else hold)
    max_p99_ms: float = 250.0  # worst device p99 in the canary cohort
    max_validation_failures: int = 0
    min_shadow_frames: int = 500
    min_shadow_agreement: float = 0.90  # shadow top-1 == production top-1


@dataclass
class Totals:
    devices: set[str] = field(default_factory=set)
    frames: int = 0
    crashes: int = 0
    restarts: int = 0
    validation_failures: int = 0
    predictions: int = 0
    barcode_checked: int = 0
    barcode_agree: int = 0
    low_confidence: int = 0
    weight_inconsistent: int = 0
    shadow_frames: int = 0
    shadow_agree: int = 0
    worst_p99_ms: float = 0.0

    def add(self, r: StatusReportV2) -> None:
        h = r.health
        self.devices.add(r.device_id)
        self.frames += r.frames_processed
        self.worst_p99_ms = max(self.worst_p99_ms, r.inference_latency_ms.p99)
        for name in ("crashes", "restarts", "validation_failures", "predictions", "barcode_checked",
                     "barcode_agree", "low_confidence", "weight_inconsistent", "shadow_frames",
                     "shadow_agree"):
            setattr(self, name, getattr(self, name) + getattr(h, name))


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool | None  # None: not enough data yet
    actual: float
    threshold: float
    detail: str


@dataclass(frozen=True)
class Decision:
    action: str  # "advance" | "hold" | "halt"
    checks: list[Check]
    canary: Totals
    control: Totals

    @property
    def reasons(self) -> list[str]:
        return [c.detail for c in self.checks if c.passed is False]


def worse_p_value(bad_a: int, n_a: int, bad_b: int, n_b: int) -> float:
    """One-sided p-value that cohort a's rate of bad outcomes exceeds cohort b's (pooled z-test)."""
    if n_a == 0 or n_b == 0:
        return 1.0
    p = (bad_a + bad_b) / (n_a + n_b)
    se = math.sqrt(p * (1 - p) * (1 / n_a + 1 / n_b))
    if se == 0:
        return 1.0 if bad_a / n_a <= bad_b / n_b else 0.0
    z = (bad_a / n_a - bad_b / n_b) / se
    return 0.5 * math.erfc(z / math.sqrt(2))


def split_cohorts(reports: Iterable[StatusReportV2], channel: ReleaseChannelV1
                  ) -> tuple[Totals, Totals, Totals]:
    """(canary, control, shadow) totals: by what each device reports it runs."""
    canary, control, shadow = Totals(), Totals(), Totals()
    candidate = channel.release.release_id
    for r in reports:
        ota = r.ota
        if ota is None or ota.channel != channel.channel:
            continue
        if ota.release_id == candidate and ota.state == "active":
            canary.add(r)
        elif ota.release_id == candidate and ota.state in ("probing", "rolled_back", "failed"):
            canary.add(r)  # on probation or rejected it: its crashes count against the candidate
        else:
            control.add(r)
            if ota.shadow_release_id == candidate:
                shadow.add(r)
    return canary, control, shadow


def _rate_check(name: str, bad_a: int, n_a: int, bad_b: int, n_b: int, margin: float, alpha: float,
                min_n: int) -> Check:
    if n_a < min_n or n_b < min_n:
        return Check(name, None, float(n_a), float(min_n), f"{name}: {n_a}/{n_b} samples, need {min_n}")
    if n_a == 0 or n_b == 0:  # only reachable with min_n = 0: the operator waived this check
        return Check(name, True, 0.0, margin, f"{name}: no samples, minimum waived (0)")
    diff = bad_a / n_a - bad_b / n_b
    p = worse_p_value(bad_a, n_a, bad_b, n_b)
    failed = p < alpha and diff > margin
    return Check(name, not failed, round(diff, 5), margin,
                 f"{name}: canary worse by {diff:+.4f} (margin {margin}), one-sided p={p:.2g} "
                 f"(alpha {alpha})")


def judge(reports: Iterable[StatusReportV2], channel: ReleaseChannelV1,
          cfg: GateConfig | None = None) -> Decision:
    cfg = cfg or GateConfig()
    canary, control, shadow = split_cohorts(reports, channel)
    checks: list[Check] = []
    if channel.rollout.stage == "shadow":
        agree = shadow.shadow_agree / shadow.shadow_frames if shadow.shadow_frames else 0.0
        enough = shadow.shadow_frames >= cfg.min_shadow_frames
        checks.append(Check("shadow_agreement", (agree >= cfg.min_shadow_agreement) if enough else None,
                            round(agree, 4), cfg.min_shadow_agreement,
                            f"shadow agreement {agree:.3f} over {shadow.shadow_frames} frames "
                            f"(min {cfg.min_shadow_agreement}, need {cfg.min_shadow_frames} frames)"))
    else:
        checks += [
            _rate_check("barcode_disagreement", canary.barcode_checked - canary.barcode_agree,
                        canary.barcode_checked, control.barcode_checked - control.barcode_agree,
                        control.barcode_checked, cfg.agreement_margin, cfg.alpha, cfg.min_barcode_checks),
            _rate_check("low_confidence", canary.low_confidence, canary.predictions,
                        control.low_confidence, control.predictions, cfg.low_conf_margin, cfg.alpha,
                        cfg.min_barcode_checks),
            _rate_check("weight_inconsistent", canary.weight_inconsistent, canary.predictions,
                        control.weight_inconsistent, control.predictions, cfg.weight_margin, cfg.alpha,
                        cfg.min_barcode_checks),
            _rate_check("crashes_per_frame", canary.crashes, canary.frames, control.crashes,
                        control.frames, cfg.crash_margin, cfg.alpha, cfg.min_frames),
            _rate_check("restarts_per_frame", canary.restarts, canary.frames, control.restarts,
                        control.frames, cfg.crash_margin, cfg.alpha, cfg.min_frames),
            Check("inference_p99_ms", canary.worst_p99_ms <= cfg.max_p99_ms, canary.worst_p99_ms,
                  cfg.max_p99_ms, f"worst canary p99 {canary.worst_p99_ms:.1f} ms "
                  f"(limit {cfg.max_p99_ms})"),
            Check("validation_failures", canary.validation_failures <= cfg.max_validation_failures,
                  float(canary.validation_failures), float(cfg.max_validation_failures),
                  f"{canary.validation_failures} golden validation failures"),
        ]
    if any(c.passed is False for c in checks):
        action = "halt"
    elif any(c.passed is None for c in checks):
        action = "hold"
    else:
        action = "advance"
    return Decision(action, checks, canary, control)


def next_stage(channel: ReleaseChannelV1, stages=DEFAULT_STAGES) -> tuple[str, float, float] | None:
    """The stage after the channel's current one (None when already full)."""
    r = channel.rollout
    for i, (stage, pct, _shadow) in enumerate(stages):
        if (stage, pct) == (r.stage, r.percent) and i + 1 < len(stages):
            return stages[i + 1]
    return None
