from __future__ import annotations

from PIL import Image

from flywheel.sim.preview import contact_sheet_size, write_contact_sheet


def test_contact_sheet_written_with_expected_size(world, tmp_path):
    out = tmp_path / "sheet.png"
    info = write_contact_sheet(out, seed=0, world=world)
    assert info["rows"] == ["manual", "A", "B", "C"]
    expected = contact_sheet_size(6, 4, 320, 240)
    with Image.open(out) as im:
        assert im.format == "PNG"
        assert im.size == expected == (info["width"], info["height"])
        px = im.convert("RGB").resize((64, 32))
    assert len(set(px.getdata())) > 100  # real frames, not a blank canvas
