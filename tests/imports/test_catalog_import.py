"""`flywheel catalog import`: every row checked, bad rows reported by line and reason, the rest in."""

from __future__ import annotations

import io
import json

import polars as pl
import pytest
from PIL import Image

from flywheel.cli import main
from flywheel.imports.barcodes import check_barcode
from flywheel.imports.catalog import CatalogError, import_catalog_file, read_catalog
from flywheel.learner import reference_sets as depot_sets


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


CSV = """id,name,brand,barcode,weight,image
cola-330,Cola 330ml,Fizz,4006381333931,350,cola.png
chips,Salted chips,Crunch,036000291452,150,
bad-digit,Oat bar,Grain,4006381333932,40,
short,Tea,Leaf,40063813339,100,
heavy,Flour,Mill,5012345678900,abc,
neg,Rice,Mill,9780201379624,-5,
,Nameless,X,4012345678901,10,
cola-330,Cola again,Fizz,9780306406157,350,
dup-code,Cola clone,Fizz,4006381333931,350,
noimg,Soap,Clean,9781861972712,90,missing.png
broken,Gum,Chew,9780470059029,10,broken.png
"""


@pytest.fixture
def catalog_dir(tmp_path):
    (tmp_path / "cola.png").write_bytes(_png())
    (tmp_path / "broken.png").write_bytes(_png()[:40])  # truncated
    (tmp_path / "catalog.csv").write_text(CSV)
    return tmp_path


def test_barcodes_ean13_and_upca_check_digits():
    assert check_barcode("4006381333931") == ("4006381333931", None)
    assert check_barcode("0360-0029-1452") == ("036000291452", None)  # UPC-A, separators ignored
    code, why = check_barcode("4006381333932")
    assert code is None and "EAN-13 check digit (expected 1, got 2)" in why
    assert "UPC-A check digit" in check_barcode("036000291453")[1]
    assert "has 11 digits" in check_barcode("40063813339")[1]
    assert "not all digits" in check_barcode("40063813339X")[1]


def test_csv_bad_rows_reported_by_line_rest_imported(local_lake, catalog_dir):
    report = import_catalog_file(local_lake, catalog_dir / "catalog.csv")
    bad = dict(report.bad_rows)
    assert report.products == 2 and len(bad) == 9
    assert "EAN-13 check digit" in bad["line 4"]
    assert "has 11 digits" in bad["line 5"]
    assert "weight 'abc' is not a number" in bad["line 6"]
    assert "not a positive number" in bad["line 7"]
    assert bad["line 8"] == "empty id"
    assert bad["line 9"] == "duplicate id 'cola-330' (first at line 2)"
    assert bad["line 10"] == "duplicate barcode 4006381333931 (first at line 2)"
    assert "cannot be read" in bad["line 11"] and "unreadable image" in bad["line 12"]
    products = {p["id"]: p for p in read_catalog(local_lake)}
    assert set(products) == {"cola-330", "chips"} == depot_sets.catalog_skus(local_lake)
    assert products["chips"]["barcode"] == "036000291452" and products["chips"]["weight_g"] == 150.0
    assert local_lake.get(products["cola-330"]["image_key"]) == _png()
    again = import_catalog_file(local_lake, catalog_dir / "catalog.csv")
    assert not again.imported.created and again.imported.sha256 == report.imported.sha256


@pytest.mark.integration
def test_parquet_catalog_on_s3_lake(s3_lake, tmp_path):
    df = pl.DataFrame({"SKU": ["a/1", "b 2", "c"], "Name": ["A", "B", "C"], "brand": ["x", "y", "z"],
                       "EAN": ["4006381333931", "5012345678900", "5012345678901"],
                       "weight_g": [1.5, 2.0, 3.0]})
    df.write_parquet(tmp_path / "cat.parquet")
    report = import_catalog_file(s3_lake, tmp_path / "cat.parquet")
    assert report.products == 2 and report.bad_rows == [("row 3", report.bad_rows[0][1])]
    assert "check digit" in report.bad_rows[0][1]
    assert depot_sets.catalog_skus(s3_lake) == {"a/1", "b 2"}
    doc = json.loads(s3_lake.get(report.imported.key))
    assert doc["schema"] == "flywheel.catalog/v1" and doc["source"] == "cat.parquet"


def test_missing_column_or_no_good_row_imports_nothing(local_lake, tmp_path, capsys):
    (tmp_path / "a.csv").write_text("id,name,barcode\nx,X,4006381333931\n")
    with pytest.raises(CatalogError, match=r"missing column\(s\) \['brand', 'weight'\]"):
        import_catalog_file(local_lake, tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("id,name,brand,barcode,weight\nx,X,B,123,1\n")
    assert main(["catalog", "import", str(tmp_path / "b.csv"), "--lake", local_lake.uri]) == 2
    assert "line 2: barcode '123' has 3 digits" in capsys.readouterr().out
    assert list(local_lake.list("depot/")) == []


def test_cli_reports_and_imports(local_lake, catalog_dir, capsys):
    assert main(["catalog", "import", str(catalog_dir / "catalog.csv"), "--lake", local_lake.uri]) == 0
    out = capsys.readouterr().out
    assert "2 product(s) imported, 9 bad row(s)" in out and "line 4: barcode" in out
