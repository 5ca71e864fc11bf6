"""Barcode: zxing-cpp on the frame, plus the clip's barcode reads propagated over the insertion.

A shopper scans an item once, while its back faces the camera; the frames before (approach) and
after (hold, drop) show the same item with the barcode hidden. One insertion runs from the weight
step before the read (the previous item landing) to the weight step after it (this item landing),
so a frame inherits the read whose insertion it lies in; frames after the step show the item lying
in the basket (the filter drops those) or the next insertion. A clip often starts before the item
comes into view with no step before the read (the previous item landed before the pre-roll): the item
is in view less than INSERTION_S before its own step (approach, hold, drop; the empty filter's
window), so a frame that early is before the insertion and inherits nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from flywheel.label.prelabelers.base import FrameInput, Prelabeler, Vote, abstain, unreadable

STEP_G = 40.0  # a weight change this large between samples is an item landing (or leaving)
DIRECT_CONF = 0.99  # the barcode is decoded on this very frame
PROPAGATED_CONF = 0.95  # inherited from a read of the same insertion
DECAY_PER_S = 0.02  # propagated confidence loses this per second from the read
# An item is in view less than this before its weight step (approach + hold + drop: 0.5-1.1 s in the
# simulated fleet; frames 1.0 s or more before the step were idle on 8 of 9 wrong inheritances
# against 3 right ones on two bench_label_turn days). Equal to FilterConfig.insertion_s.
INSERTION_S = 1.0


def weight_steps(sidecar) -> list[tuple[float, float]]:  # noqa: ANN001
    """(t, grams) of each step in the clip's weight series: where the reading settles at a new level
    differing by STEP_G or more from the previous level (noise-robust: compares against the level,
    not the last sample)."""
    series = [(s.t, s.grams) for s in sidecar.weight_series]
    if len(series) < 2:
        return []
    steps, level = [], series[0][1]
    for t, g in series[1:]:
        if abs(g - level) >= STEP_G:
            steps.append((t, g - level))
            level = g
    return steps


def insertion_bounds(sidecar, read_frame: int) -> tuple[float, float]:  # noqa: ANN001
    """Clip-time window (start, end) of the insertion that contains the read at `read_frame`."""
    t_read = sidecar.frames[read_frame].t
    start, end = 0.0, float("inf")
    for t, _ in weight_steps(sidecar):
        if t <= t_read:
            start = t
        elif end == float("inf"):
            end = t
    return start, end


def before_insertion(t: float, t_read: float, end: float) -> bool:
    """Whether a frame at clip time `t` lies before the item of a read at `t_read` came into view:
    `INSERTION_S` or more before its landing step `end` (inf: it lands after the clip; the read,
    which happens while the item is in view, bounds it then)."""
    anchor = end if end != float("inf") else t_read
    return anchor - t >= INSERTION_S - 1e-6


class BarcodeLabeler(Prelabeler):
    name = "barcode"
    version = "1"
    vision = False

    def __init__(self, catalog_eans: set[str]) -> None:
        self.eans = catalog_eans

    def _decode(self, frame: FrameInput) -> str | None:
        import zxingcpp

        rgb = frame.rgb
        hits = zxingcpp.read_barcodes(rgb, formats=zxingcpp.BarcodeFormat.EAN13)
        texts = [h.text for h in hits if h.text in self.eans]
        return texts[0] if texts else None

    def label(self, frames: Sequence[FrameInput]) -> list[Vote]:
        out = []
        for f in frames:
            try:
                out.append(self._one(f))
            except Exception as e:  # noqa: BLE001 - a labeler failure is an abstention, never a crash
                out.append(abstain("error", f"{type(e).__name__}: {e}"))
        return out

    def _one(self, f: FrameInput) -> Vote:
        bad = unreadable(f)
        if bad is None:
            direct = self._decode(f)
            if direct:
                return Vote(direct, DIRECT_CONF, f"EAN-13 {direct} decoded on this frame")
        sc = f.sidecar
        if sc is None:
            return bad or abstain("no_sidecar", f.clip_id)
        reads = [r for r in sc.barcode_reads if r.text in self.eans]
        if not sc.barcode_reads:
            return bad or abstain("no_barcode_reads", f.clip_id)
        if not reads:
            return abstain("barcode_not_in_catalog", ",".join(sorted({r.text for r in sc.barcode_reads})))
        t = sc.frames[f.frame_index].t if f.frame_index < len(sc.frames) else f.t_s
        best: tuple[float, str, int] | None = None
        early = False  # within a read's weight steps, but before its item came into view
        for r in reads:
            start, end = insertion_bounds(sc, r.frame)
            if not start <= t <= end:
                continue
            if before_insertion(t, sc.frames[r.frame].t, end):
                early = True
                continue
            dt = abs(t - sc.frames[r.frame].t)
            if best is None or dt < best[0]:
                best = (dt, r.text, r.frame)
        if best is None and early:
            return abstain("before_insertion", f"t={t:.2f}s is {INSERTION_S:g}s or more before the "
                           "read's item lands")
        if best is None:
            return abstain("outside_insertion", f"t={t:.2f}s not within a read's insertion")
        labels = {r.text for r in reads if insertion_bounds(sc, r.frame) == insertion_bounds(sc, best[2])}
        if len(labels) > 1:
            return abstain("conflicting_reads", ",".join(sorted(labels)))
        dt, text, rf = best
        conf = max(0.5, PROPAGATED_CONF - DECAY_PER_S * dt)
        return Vote(text, conf, f"clip read {text} at frame {rf}, propagated {dt:.2f}s within the insertion")
