"""PNG plots for Dagster metadata (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

import base64
import io


def _fig_png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def class_balance_png(per_class: dict[str, dict[str, int]]) -> bytes:
    plt = _plt()
    labels = sorted(per_class)
    train = [per_class[c]["train"] for c in labels]
    val = [per_class[c]["val"] for c in labels]
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(labels)), 3.2))
    x = range(len(labels))
    ax.bar(x, train, label="train")
    ax.bar(x, val, bottom=train, label="val")
    ax.set_xticks(list(x))
    ax.set_xticklabels([c[-5:] if c != "empty" else c for c in labels], rotation=90, fontsize=7)
    ax.set_ylabel("frames")
    ax.set_title("class balance (EAN suffix)")
    ax.legend()
    return _fig_png(fig)


def training_curves_png(curves: list[dict]) -> bytes:
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3))
    epochs = [c.get("epoch", i + 1) for i, c in enumerate(curves)]
    for k in sorted({k for c in curves for k in c}):
        ys = [c.get(k) for c in curves]
        if k.startswith(("train/", "val/")) and "loss" in k:
            a1.plot(epochs, ys, marker="o", label=k)
        elif k.startswith("metrics/"):
            a2.plot(epochs, ys, marker="o", label=k.removeprefix("metrics/"))
    a1.set_title("loss")
    a2.set_title("validation metrics")
    for a in (a1, a2):
        a.set_xlabel("epoch")
        if a.lines:
            a.legend(fontsize=7)
    return _fig_png(fig)


def slices_png(candidate: dict, production: dict | None) -> bytes:
    plt = _plt()
    names = sorted(k for k, v in candidate.items() if v["top1"] is not None)
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(names)), 3.2))
    x = list(range(len(names)))
    ax.bar([i - 0.2 for i in x], [candidate[n]["top1"] for n in names], width=0.4, label="candidate")
    if production:
        ax.bar([i + 0.2 for i in x], [(production.get(n) or {}).get("top1") or 0 for n in names],
               width=0.4, label="production")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("top-1")
    ax.legend()
    return _fig_png(fig)


def png_markdown(png: bytes, alt: str = "plot") -> str:
    """Inline PNG for a Dagster markdown metadata value."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
