"""The low-confidence trigger per frame vs per insertion (issue 16, point 4), on the demo's fleet.

The demo's first turn runs carts on the untrained bootstrap model: with the old rule
`all(motion(7), low_confidence(0.55))` nearly every moving frame of that poor model is "uncertain"
(1,005 of 1,800 frames in the demo). The device now decides each insertion from all its frames
(edge_agent/insertion.py) and `low_confidence(0.55, "insertion")` fires once per uncertain
insertion, on the frame that closes it. Same fleet (carts, minutes, seed), same model, the two rule
sets side by side: firings, captures, uploaded bytes, and the insertions the carts decided.
Run: `python -m benchmarks.bench_uncertain [out_dir] [--carts 3] [--minutes 1]`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

PER_FRAME = "all(motion(7), low_confidence(0.55))"  # the rule before (fleet-default-1)
PER_INSERTION = 'low_confidence(0.55, "insertion")'  # the rule now (fleet-default-2)


def run(rule: str, carts: int, minutes: float, seed: int) -> dict:
    from edge_agent.lake import Lake
    from edge_agent.triggers import build_rule_set
    from flywheel.fleet.runner import DEFAULT_RULES, simulate_fleet

    others = [r for r in DEFAULT_RULES["rules"] if r["name"] != "uncertain"]
    rules = build_rule_set(f"bench-{abs(hash(rule)) % 10**6}",
                           [*others, {"name": "uncertain", "when": rule, "priority": 1}])
    with tempfile.TemporaryDirectory(prefix="bench-uncertain-") as tmp:
        t = time.perf_counter()
        s = simulate_fleet(Lake.at_path(Path(tmp) / "lake"), carts=carts, minutes=minutes, seed=seed,
                           day="2026-12-01", work_dir=Path(tmp) / "fleet", progress=False,
                           rules=rules, channel=None)
        wall = time.perf_counter() - t
        insertions = sum(len(doc.get("insertions", [])) for doc in _sidecars(Path(tmp) / "lake"))
    return {"rule": rule, "frames": s.frames, "fires": s.fires, "uncertain": s.fires.get("uncertain", 0),
            "captures": s.captures, "uploaded": s.uploaded, "uploaded_mb": round(s.uploaded_bytes / 1e6, 2),
            "insertions_decided": s.insertions, "insertions_low_confidence": s.insertions_low_confidence,
            "insertions_in_uploaded_sidecars": insertions, "wall_s": round(wall, 1),
            "model": s.model_version}


def _sidecars(lake_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in (lake_dir / "landing" / "clips").rglob("*.json")]


def main(out_dir: Path, carts: int = 3, minutes: float = 1.0, seed: int = 0) -> dict:
    before = run(PER_FRAME, carts, minutes, seed)
    after = run(PER_INSERTION, carts, minutes, seed)
    result = {"carts": carts, "minutes": minutes, "seed": seed, "per_frame": before,
              "per_insertion": after,
              "uncertain_ratio": after["uncertain"] / max(1, before["uncertain"]),
              "uploaded_bytes_ratio": after["uploaded_mb"] / max(1e-9, before["uploaded_mb"])}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "uncertain.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="bench_uncertain")
    p.add_argument("out", nargs="?", type=Path,
                   default=Path(__file__).resolve().parents[1] / "var" / "bench")
    p.add_argument("--carts", type=int, default=3)
    p.add_argument("--minutes", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(sys.argv[1:])
    print(json.dumps(main(a.out, a.carts, a.minutes, a.seed), indent=1))
