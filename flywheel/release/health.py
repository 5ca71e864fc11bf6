"""Health gates for a staged rollout, from the devices' status reports (StatusReportV2).

Devices running the candidate release form the canary cohort, devices of the same channel still on
the previous release the control cohort; both are summed over the same window. The statistical
test is a one-sided two-proportion z-test, "is the canary's rate worse than the control's?", at
significance `alpha`, AND by more than a practical margin (a tiny but significant difference on a
huge fleet does not halt a release). The unit of independence is the DEVICE, not the frame: frames
of one cart share its camera, lighting and shoppers, so a frame-level test would call a single odd
cart "significant". Each cohort's variance is the cluster-robust (ratio-estimator) variance over
its devices, never below the binomial one: with equal devices it is the plain pooled z-test, with
heterogeneous devices it is wider (more conservative); a cohort of one device cannot estimate the
spread between devices and falls back to the binomial variance (said in the check's detail).
It is applied to barcode agreement (top-1 vs the barcode read on the same insertion), the
low-confidence rate, weight-inconsistent predictions, crashes and restarts per frame. Latency and
validation failures are absolute limits. Shadow devices are judged on their agreement with
production.

Each check carries `actual` and `threshold`; the decision is "advance", "hold" (not enough data
yet) or "halt" (a check failed: roll back).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

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
    # the share of insertions decided below the low-confidence mark may rise at most this much;
    # judged once both cohorts decided min_insertions (fewer: not judged, the per-frame rate stands)
    insertion_low_conf_margin: float = 0.05
    min_insertions: int = 30
    weight_margin: float = 0.02  # weight-inconsistent rate may rise at most this much
    crash_margin: float = 0.001  # crashes per frame may rise at most this much
    min_barcode_checks: int = 100  # per cohort, before agreement is judged (else hold)
    min_frames: int = 1000  # per cohort, before crash rates are judged (else hold)
    max_p99_ms: float = 250.0  # worst device p99 in the canary cohort
    max_validation_failures: int = 0
    # the confidence checks are proxies for accuracy: a canary that agrees with the barcode reads
    # more often than the control (judged on min_barcode_checks a cohort) is not halted by them
    # (bench_flywheel: fine-tuned candidates the gate passed, less confident on empty carts, were
    # rolled back for a low-confidence rate +0.17..+0.44 higher). False: they always halt.
    confidence_yields_to_agreement: bool = True
    min_shadow_frames: int = 500
    min_shadow_agreement: float = 0.90  # shadow top-1 == production top-1


COUNTERS = ("frames", "crashes", "restarts", "validation_failures", "predictions", "barcode_checked",
            "barcode_agree", "low_confidence", "weight_steps", "weight_inconsistent", "shadow_frames",
            "shadow_agree", "insertions", "insertions_low_confidence")


@dataclass
class Totals:
    """A cohort's figures per device (the unit the tests treat as independent); sums on demand."""

    cells: dict[str, dict[str, float]] = field(default_factory=dict)  # device -> counter -> value

    def add(self, r: StatusReportV2) -> None:
        h = r.health
        cell = self.cells.setdefault(r.device_id, dict.fromkeys((*COUNTERS, "worst_p99_ms"), 0))
        cell["frames"] += r.frames_processed
        cell["worst_p99_ms"] = max(cell["worst_p99_ms"], r.inference_latency_ms.p99)
        for name in COUNTERS[1:]:
            # .get: a window persisted before a counter existed (window.json) lacks it
            cell[name] = cell.get(name, 0) + getattr(h, name)

    @property
    def devices(self) -> set[str]:
        return set(self.cells)

    def total(self, name: str) -> int:
        return int(sum(c.get(name, 0) for c in self.cells.values()))

    def per_device(self, bad: str, n: str, minus: bool = False) -> list[tuple[int, int]]:
        """(bad, n) per device; `minus`: bad = n - the `bad` counter (disagreements from agreements)."""
        return [(int(c.get(n, 0) - c.get(bad, 0)) if minus else int(c.get(bad, 0)), int(c.get(n, 0)))
                for c in self.cells.values()]

    @property
    def worst_p99_ms(self) -> float:
        return max((c["worst_p99_ms"] for c in self.cells.values()), default=0.0)

    def __getattr__(self, name: str) -> int:
        if name in COUNTERS:
            return self.total(name)
        raise AttributeError(name)


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

    @property
    def waiting(self) -> list[str]:
        """Why a hold holds: the checks without enough evidence yet (a hold has no failed one)."""
        return [c.detail for c in self.checks if c.passed is None]


def worse_p_value(bad_a: int, n_a: int, bad_b: int, n_b: int) -> float:
    """One-sided p-value that cohort a's rate of bad outcomes exceeds cohort b's (pooled z-test,
    frames independent)."""
    return clustered_worse_p_value([(bad_a, n_a)], [(bad_b, n_b)])


def _cluster_var(cells: list[tuple[int, int]], rate: float, n: int) -> float:
    """Cluster-robust variance of a cohort's pooled rate (ratio estimator over its devices)."""
    m = sum(1 for _, k in cells if k > 0)
    if m < 2:
        return 0.0
    return m / (m - 1) * sum((b - rate * k) ** 2 for b, k in cells) / n**2


def clustered_worse_p_value(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> float:
    """One-sided p-value that cohort a's pooled rate exceeds cohort b's, each cohort given as
    (bad, n) per device: per cohort the larger of the binomial variance (pooled under H0) and the
    cluster-robust one, so spread between devices widens the test and never narrows it."""
    bad_a, n_a = sum(x for x, _ in a), sum(k for _, k in a)
    bad_b, n_b = sum(x for x, _ in b), sum(k for _, k in b)
    if n_a == 0 or n_b == 0:
        return 1.0
    pooled = (bad_a + bad_b) / (n_a + n_b)
    r_a, r_b = bad_a / n_a, bad_b / n_b
    var = (max(pooled * (1 - pooled) / n_a, _cluster_var(a, r_a, n_a))
           + max(pooled * (1 - pooled) / n_b, _cluster_var(b, r_b, n_b)))
    if var == 0:
        return 1.0 if r_a <= r_b else 0.0
    z = (r_a - r_b) / math.sqrt(var)
    return 0.5 * math.erfc(z / math.sqrt(2))


def cohorts_of(r: StatusReportV2, channel: ReleaseChannelV1) -> tuple[str, ...]:
    """Which cohorts a report counts in ("canary", "control", "shadow"): by what the device says
    it runs. A device on probation or that rejected the candidate counts in the canary: its crashes
    count against the candidate."""
    ota = r.ota
    if ota is None or ota.channel != channel.channel:
        return ()
    candidate = channel.release.release_id
    if ota.release_id == candidate and ota.state in ("active", "probing", "rolled_back", "failed"):
        return ("canary",)
    return ("control", "shadow") if ota.shadow_release_id == candidate else ("control",)


@dataclass
class Cohorts:
    canary: Totals = field(default_factory=Totals)
    control: Totals = field(default_factory=Totals)
    shadow: Totals = field(default_factory=Totals)

    def add(self, r: StatusReportV2, channel: ReleaseChannelV1) -> None:
        for name in cohorts_of(r, channel):
            getattr(self, name).add(r)


def split_cohorts(reports: Iterable[StatusReportV2], channel: ReleaseChannelV1
                  ) -> tuple[Totals, Totals, Totals]:
    """(canary, control, shadow) totals: by what each device reports it runs."""
    out = Cohorts()
    for r in reports:
        out.add(r, channel)
    return out.canary, out.control, out.shadow


def _rate_check(name: str, a: list[tuple[int, int]], b: list[tuple[int, int]], margin: float, alpha: float,
                min_n: int) -> Check:
    """Canary cells `a` vs control cells `b`, (bad, n) per device."""
    bad_a, n_a = sum(x for x, _ in a), sum(k for _, k in a)
    bad_b, n_b = sum(x for x, _ in b), sum(k for _, k in b)
    if n_a < min_n or n_b < min_n:
        return Check(name, None, float(n_a), float(min_n), f"{name}: {n_a}/{n_b} samples, need {min_n}")
    if n_a == 0 or n_b == 0:  # only reachable with min_n = 0: the operator waived this check
        return Check(name, True, 0.0, margin, f"{name}: no samples, minimum waived (0)")
    diff = bad_a / n_a - bad_b / n_b
    p = clustered_worse_p_value(a, b)
    failed = p < alpha and diff > margin
    units = f"{len(a)} vs {len(b)} devices" + (" (one device: binomial variance)" if min(len(a), len(b)) < 2
                                                 else "")
    return Check(name, not failed, round(diff, 5), margin,
                 f"{name}: canary worse by {diff:+.4f} (margin {margin}), one-sided p={p:.2g} "
                 f"(alpha {alpha}, per-device test, {units})")


def _waived_when_short(check: Check) -> Check:
    """A check that never holds a stage for want of samples: a small fleet decides few insertions
    and weight steps (one per item put in a cart), and the per-frame checks already cover them."""
    if check.passed is not None:
        return check
    return replace(check, passed=True, detail=f"{check.detail}: not judged")


CONFIDENCE_PROXIES = ("low_confidence", "insertion_low_confidence")


def _confidence_yields(checks: list[Check], canary: Totals, control: Totals, cfg: GateConfig
                       ) -> list[Check]:
    """The confidence checks passed (with why) when barcode agreement, the direct measure, was judged
    on enough reads in both cohorts and the canary agrees more often (as often: the proxies stand)."""
    agreement = next(c for c in checks if c.name == "barcode_disagreement")
    reads = min(canary.total("barcode_checked"), control.total("barcode_checked"))
    if not agreement.passed or agreement.actual >= 0 or reads < max(1, cfg.min_barcode_checks):
        return checks
    return [replace(c, passed=True, detail=f"{c.detail}; not halting: barcode agreement "
                                           f"{-agreement.actual:+.4f} vs control over >= {reads:.0f} reads "
                                           "(confidence is a proxy, the reads are the measure)")
            if c.name in CONFIDENCE_PROXIES and c.passed is False else c for c in checks]


def judge(reports: Iterable[StatusReportV2] | Cohorts, channel: ReleaseChannelV1,
          cfg: GateConfig | None = None) -> Decision:
    """Judge the stage on its window: the reports, or cohorts already summed (`window.py`)."""
    cfg = cfg or GateConfig()
    if isinstance(reports, Cohorts):
        canary, control, shadow = reports.canary, reports.control, reports.shadow
    else:
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
        def rate(name: str, bad: str, n: str, margin: float, min_n: int, minus: bool = False) -> Check:
            return _rate_check(name, canary.per_device(bad, n, minus), control.per_device(bad, n, minus),
                               margin, cfg.alpha, min_n)

        checks += [
            rate("barcode_disagreement", "barcode_agree", "barcode_checked", cfg.agreement_margin,
                 cfg.min_barcode_checks, minus=True),
            rate("low_confidence", "low_confidence", "predictions", cfg.low_conf_margin,
                 cfg.min_barcode_checks),
            # per weight step, not per prediction (edge_agent.triggers.signals.WeightStepWatch): one
            # step an item, like insertions, so judged from min_insertions on and never holding
            _waived_when_short(rate("weight_inconsistent", "weight_inconsistent", "weight_steps",
                                    cfg.weight_margin, cfg.min_insertions)),
            _waived_when_short(rate("insertion_low_confidence", "insertions_low_confidence", "insertions",
                                    cfg.insertion_low_conf_margin, cfg.min_insertions)),
            rate("crashes_per_frame", "crashes", "frames", cfg.crash_margin, cfg.min_frames),
            rate("restarts_per_frame", "restarts", "frames", cfg.crash_margin, cfg.min_frames),
            Check("inference_p99_ms", canary.worst_p99_ms <= cfg.max_p99_ms, canary.worst_p99_ms,
                  cfg.max_p99_ms, f"worst canary p99 {canary.worst_p99_ms:.1f} ms "
                  f"(limit {cfg.max_p99_ms})"),
            Check("validation_failures", canary.validation_failures <= cfg.max_validation_failures,
                  float(canary.validation_failures), float(cfg.max_validation_failures),
                  f"{canary.validation_failures} golden validation failures"),
        ]
        if cfg.confidence_yields_to_agreement:
            checks = _confidence_yields(checks, canary, control, cfg)
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
