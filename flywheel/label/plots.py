"""The prelabels asset's picture (Dagster metadata): what each labeler named or abstained on, and where
the ensemble's confidence falls against the review queue's auto-accept threshold. A re-labelling
backfill with a new teacher shows up here at a glance."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any


def prelabels_png(rows: Sequence[dict[str, Any]], accept_threshold: float) -> bytes:
    """`rows`: prelabels rows (at least `label`, `confidence`, `votes`, `disagreement`)."""
    from flywheel.learner.plots import _fig_png, _plt

    plt = _plt()
    named: Counter = Counter()
    abstained: Counter = Counter()
    versions: dict[str, str] = {}
    for r in rows:
        for v in r["votes"] or []:
            versions[v["labeler"]] = v["version"]
            (named if v["label"] is not None else abstained)[v["labeler"]] += 1
    labelers = sorted(versions)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3))
    y = range(len(labelers))
    a1.barh(y, [named[n] for n in labelers], color="#4a90d9", label="named a SKU")
    a1.barh(y, [abstained[n] for n in labelers], left=[named[n] for n in labelers], color="#bbbbbb",
            label="abstained")
    a1.set_yticks(list(y), [f"{n} ({versions[n][:14]})" for n in labelers], fontsize=7)
    a1.set_xlabel("frames")
    a1.set_title("votes by labeler (version)", fontsize=9)
    a1.legend(fontsize=7)
    agree = [r["confidence"] for r in rows if r["label"] is not None and not r["disagreement"]]
    disagree = [r["confidence"] for r in rows if r["label"] is not None and r["disagreement"]]
    a2.hist([agree, disagree], bins=[i / 20 for i in range(21)], stacked=True,
            color=["#4a90d9", "#e08a2c"], label=["labelers agree", "labelers disagree"])
    a2.axvline(accept_threshold, color="red", linestyle="--", label=f"auto-accept {accept_threshold:g}")
    a2.set_xlabel("ensemble confidence (calibrated)")
    a2.set_ylabel("frames")
    a2.set_title(f"{len(agree) + len(disagree)} of {len(rows)} frames labelled", fontsize=9)
    a2.legend(fontsize=7)
    return _fig_png(fig)
