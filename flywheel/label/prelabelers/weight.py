"""Weight: the load cell's step for this frame's insertion, matched to catalog weights.

It narrows the candidates (every product within tolerance) and names one only when a single
product fits; the ensemble never lets it decide alone. A frame INSERTION_S or more before the step
shows the cart before that item came into view: it abstains there (no list either: kept, the list
caught annotator slips but cut the cold day's auto-accepted share, see the README's Label figures).
"""

from __future__ import annotations

from collections.abc import Sequence

from flywheel.label.prelabelers.barcode import INSERTION_S, weight_steps
from flywheel.label.prelabelers.base import FrameInput, Prelabeler, Product, Vote, abstain

TOL_G = 12.0  # load-cell noise (~3 g std per reading, two readings) plus settling
TOL_REL = 0.02  # and 2 % of the weight (packaging varies)


class WeightLabeler(Prelabeler):
    name = "weight"
    version = "1"
    vision = False

    def __init__(self, products: Sequence[Product]) -> None:
        self.products = [p for p in products if p.weight_g]
        self.skipped = len(products) - len(self.products)  # products without a catalog weight

    def candidates(self, grams: float) -> list[tuple[float, str]]:
        """(|difference|, ean) of every product within tolerance of `grams`, nearest first."""
        out = []
        for p in self.products:
            d = abs(p.weight_g - grams)
            if d <= TOL_G + TOL_REL * p.weight_g:
                out.append((d, p.ean))
        return sorted(out)

    def label(self, frames: Sequence[FrameInput]) -> list[Vote]:
        out = []
        for f in frames:
            try:
                out.append(self._one(f))
            except Exception as e:  # noqa: BLE001
                out.append(abstain("error", f"{type(e).__name__}: {e}"))
        return out

    def _one(self, f: FrameInput) -> Vote:
        sc = f.sidecar
        if sc is None:
            return abstain("no_sidecar", f.clip_id)
        t = sc.frames[f.frame_index].t if f.frame_index < len(sc.frames) else f.t_s
        # the item in view lands at the first step at or after this frame
        step = next(((ts, g) for ts, g in weight_steps(sc) if ts >= t), None)
        if step is None:
            return abstain("no_weight_step", f"no step after t={t:.2f}s")
        if step[0] - t >= INSERTION_S - 1e-6:
            return abstain("before_insertion", f"step at t={step[0]:.2f}s, {step[0] - t:.2f}s later")
        if step[1] < 0:
            return abstain("item_removed", f"{step[1]:.0f} g at t={step[0]:.2f}s")
        cands = self.candidates(step[1])
        if not cands:
            return abstain("no_catalog_weight", f"{step[1]:.0f} g matches no product")
        names = tuple(e for _, e in cands)
        evidence = f"step {step[1]:.0f} g at t={step[0]:.2f}s; candidates {','.join(names[:5])}"
        if len(cands) > 1:
            return Vote(None, 0.0, f"abstain: ambiguous: {evidence}", "ambiguous", names)
        return Vote(names[0], 0.6, evidence, None, names)
