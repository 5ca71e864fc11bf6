"""`flywheel sim preview|export`: the commands people run to look at the simulated world."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

from flywheel.cli import main


def test_preview_writes_a_contact_sheet(tmp_path: Path, capsys) -> None:
    out = tmp_path / "sheet.png"
    assert main(["sim", "preview", "--out", str(out), "--cols", "3"]) == 0
    with Image.open(out) as img:
        assert img.format == "PNG" and img.width > 3 * 320 and img.height > 4 * 240
    assert "contact sheet" in capsys.readouterr().out


def test_export_writes_the_standard_datasets(tmp_path: Path) -> None:
    out = tmp_path / "sets"
    assert main(["sim", "export", "--out", str(out), "--per-sku", "2", "--test-size", "12"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert {"bootstrap", "test_manual", "test_store_A", "test_store_B", "test_store_C"} <= set(manifest)
    table = pq.read_table(out / "test_store_B.parquet")
    assert table.num_rows == 12 == manifest["test_store_B"]["rows"]
    assert set(table.column("store").to_pylist()) == {"B"}
