"""`flywheel search`, `flywheel sql`, `flywheel replay` as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flywheel.depot.embed import DescriptorEncoder
from flywheel.depot.index import index_day
from flywheel.depot.ingest import ingest_day
from tests.support.clips import land_clip

ROOT = Path(__file__).resolve().parents[2]
DAY = "2026-11-24"


def flywheel(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "flywheel.cli", *args], cwd=ROOT, capture_output=True,
                         text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.mark.slow
def test_search_sql_and_replay_commands(local_lake, tmp_path: Path) -> None:
    clips = [land_clip(local_lake, seed=i, product=i, device_id=f"cart-{i}") for i in range(3)]
    ingest_day(local_lake, DAY)
    index_day(local_lake, DAY, DescriptorEncoder())
    root = str(local_lake.local_path())

    lines = flywheel("search", "--lake", root, "--device", "cart-1", "--json").splitlines()
    hits = [json.loads(x) for x in lines]
    assert hits and {h["clip_id"] for h in hits} == {clips[1].clip_id}
    assert all(Path(h["thumbnail"]).exists() for h in hits)
    table = flywheel("search", "--lake", root, "--like-clip", clips[0].clip_id, "--limit", "3")
    assert "3 frames" in table and clips[0].clip_id not in table

    out = flywheel("sql", "--lake", root, "SELECT device_id, count(*) AS n FROM frames GROUP BY 1 ORDER BY 1")
    rows = [r.split("\t") for r in out.strip().splitlines()]
    assert rows[0] == ["device_id", "n"] and [r[0] for r in rows[1:]] == ["cart-0", "cart-1", "cart-2"]

    out = flywheel("replay", clips[2].clip_id, "--lake", root, "--out", str(tmp_path))
    assert (tmp_path / f"{clips[2].clip_id}.mp4").stat().st_size > 1000
    assert (tmp_path / f"{clips[2].clip_id}.png").read_bytes()[:4] == b"\x89PNG"
    assert "contact sheet" in out
