"""Each pre-labeler on real inputs (real JPEGs, a contract-valid sidecar, real zxing-cpp, real
RapidOCR on a rendered package, the device runtime on a real ONNX model), and every kind of bad
input ending as a counted abstention, never an exception."""

from __future__ import annotations

import numpy as np
import pytest

from flywheel.depot.frames import to_jpeg
from flywheel.label.ensemble import Calibration
from flywheel.label.prelabel import PrelabelReport, prelabel_rows, vote_all
from flywheel.label.prelabelers.barcode import BarcodeLabeler
from flywheel.label.prelabelers.base import FrameInput, Product
from flywheel.label.prelabelers.reader import ReaderLabeler
from flywheel.label.prelabelers.teacher import TeacherLabeler
from flywheel.label.prelabelers.vlm import VlmLabeler
from flywheel.label.prelabelers.weight import WeightLabeler
from tests.support.clips import EANS, build_clip

EAN = EANS[0]
PRODUCTS = [Product(EAN, "Still Water", "Tamarind", "water", 350.0),
            Product(EANS[1], "Earl Grey", "Okapi", "tea", 120.0),
            Product(EANS[2], None, None, "tea", 125.0)]  # no name: the reader never matches it
GREY = np.full((120, 160, 3), 90, np.uint8)


def _frame(i: int, sidecar=None, jpeg: bytes | None = None) -> FrameInput:  # noqa: ANN001
    return FrameInput(f"c-{i:06d}", "c", "cart-1", i, i / 8, to_jpeg(GREY) if jpeg is None else jpeg, sidecar)


def _barcode_image(ean: str) -> np.ndarray:
    import zxingcpp

    code = np.asarray(zxingcpp.write_barcode(zxingcpp.BarcodeFormat.EAN13, ean, width=300, height=120))
    img = np.full((240, 400, 3), 200, np.uint8)
    img[60:60 + code.shape[0], 10:10 + code.shape[1]] = code[..., None] if code.ndim == 2 else code[..., :3]
    return img


def test_barcode_decodes_on_the_frame_and_propagates_over_the_insertion() -> None:
    sc = build_clip(product=0, n_frames=24, fps=8).sidecar  # read at frame 10, weight step at t=1.75 s
    lab = BarcodeLabeler({p.ean for p in PRODUCTS})
    direct, before, after = lab.label([_frame(3, sc, to_jpeg(_barcode_image(EAN))), _frame(8, sc),
                                       _frame(20, sc)])
    assert direct.label == EAN and direct.confidence == 0.99 and "decoded on this frame" in direct.evidence
    assert before.label == EAN and 0.5 < before.confidence < 0.95 and "propagated" in before.evidence
    assert after.label is None and after.reason == "outside_insertion"  # the item lies in the basket


def test_a_frame_before_the_item_comes_into_view_inherits_no_read() -> None:
    """Frame 0 of a clip with no weight step before the read (the previous item landed before the
    pre-roll): 1 s or more before this item's step it shows the cart without the item."""
    sc = build_clip(product=0, n_frames=24, fps=8).sidecar  # read at frame 10, weight step at t=1.75 s
    lab = BarcodeLabeler({p.ean for p in PRODUCTS})
    first, edge, inside = lab.label([_frame(0, sc), _frame(6, sc), _frame(7, sc)])  # t 0, 0.75, 0.875
    assert first.label is None and first.reason == "before_insertion"
    assert edge.label is None and edge.reason == "before_insertion"  # exactly 1 s before the step
    assert inside.label == EAN and "propagated" in inside.evidence
    (w0, w7) = WeightLabeler(PRODUCTS).label([_frame(0, sc), _frame(7, sc)])
    assert w0.label is None and w0.reason == "before_insertion" and not w0.candidates
    assert w7.label == EAN


def test_without_a_step_after_the_read_the_read_bounds_the_insertion() -> None:
    from flywheel.label.prelabelers.barcode import before_insertion

    inf = float("inf")
    assert before_insertion(0.0, 1.3, inf) and not before_insertion(0.5, 1.3, inf)
    assert before_insertion(0.0, 0.2, 1.0) and not before_insertion(0.1, 0.2, 1.0)


def test_weight_narrows_to_the_product_of_the_step() -> None:
    sc = build_clip(product=0, n_frames=24, fps=8).sidecar  # +350 g
    lab = WeightLabeler(PRODUCTS)
    (v,) = lab.label([_frame(8, sc)])
    assert v.label == EAN and v.candidates == (EAN,) and "350 g" in v.evidence
    two = WeightLabeler([*PRODUCTS, Product("4000000000017", "Cola", "Okapi", "soda", 352.0)])
    (amb,) = two.label([_frame(8, sc)])
    assert amb.label is None and amb.reason == "ambiguous" and set(amb.candidates) == {EAN, "4000000000017"}


def test_reader_reads_a_rendered_package() -> None:
    from flywheel.sim import default_world
    from flywheel.sim.packaging import render_front

    world = default_world(0, 3)
    product = max(world.catalog.products, key=lambda p: len(p.name))
    sprite = render_front(product)
    rgba = sprite.rgba
    img = np.full((max(240, rgba.shape[0] + 20), max(320, rgba.shape[1] + 20), 3), 60, np.uint8)
    alpha = rgba[..., 3:4] / 255.0
    img[10:10 + rgba.shape[0], 10:10 + rgba.shape[1]] = (rgba[..., :3] * alpha
                                                         + img[10:10 + rgba.shape[0], 10:10 + rgba.shape[1]]
                                                         * (1 - alpha)).astype(np.uint8)
    products = [Product(p.ean, p.name, p.brand, p.category, p.weight_g) for p in world.catalog.products]
    reader = ReaderLabeler([*products, Product("4000000000024", None, None, None, None)])
    assert reader.skipped == 1
    (v,) = reader.label([_frame(0, jpeg=to_jpeg(img))])
    assert v.label == product.ean, v.evidence


class _Broken:
    def __call__(self, *a, **k):  # noqa: ANN002, ANN003, ANN204
        raise RuntimeError("onnxruntime exploded")


def test_bad_input_abstains_with_counted_reasons(tmp_path) -> None:
    sc = build_clip(product=0).sidecar
    no_reads = sc.model_copy(update={"barcode_reads": [], "weight_series": []})  # nothing decides: OCR runs
    bad_dir = tmp_path / "model"
    (bad_dir / "slots" / "a").mkdir(parents=True)
    (bad_dir / "slots" / "a" / "model.onnx").write_bytes(b"not onnx")
    (bad_dir / "slots" / "a" / "model.json").write_text('{"model_version": "t-1", "labels": ["none"]}')
    (bad_dir / "active").write_text("a")
    labelers = [BarcodeLabeler({p.ean for p in PRODUCTS}), WeightLabeler(PRODUCTS),
                TeacherLabeler(bad_dir), ReaderLabeler(PRODUCTS, engine=_Broken()),
                VlmLabeler(tmp_path / "no-such-checkpoint", PRODUCTS)]
    frames = [_frame(0, None, b"\xff\xd8 truncated jpeg"), _frame(1, no_reads), _frame(8, sc)]
    report = PrelabelReport(day="2026-11-24")
    votes = vote_all(labelers, frames, report)
    rows = prelabel_rows([{"frame_id": f.frame_id} for f in frames], votes, labelers, Calibration(), report)
    assert len(rows) == 3  # nothing lost
    reasons = report.abstains
    assert reasons["barcode:unreadable_jpeg"] == 1 and reasons["barcode:no_barcode_reads"] == 1
    assert reasons["weight:no_sidecar"] == 1
    assert reasons["teacher:no_model"] == 3 and "did not load" in labelers[2].load_error
    assert reasons["reader:unreadable_jpeg"] == 1 and reasons["reader:ocr_error"] == 1
    assert reasons["reader:skipped"] == 1  # the barcode decided frame 8: no OCR spent there
    assert reasons["weight:no_weight_step"] == 1
    assert reasons["vlm:no_model"] == 3 and "did not load" in labelers[4].load_error
    assert rows[0]["label"] is None and rows[0]["confidence"] == 0.0
    assert all(len(r["votes"]) == 5 for r in rows)


@pytest.mark.slow
def test_teacher_runs_the_device_model(tmp_path) -> None:
    from flywheel.fleet.bootstrap import install_model_slot

    model = install_model_slot(tmp_path / "m", ["none", EAN, EANS[1]], version="boot-1", seed=0)
    teacher = TeacherLabeler(model)
    img = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    votes = teacher.label([_frame(0, jpeg=to_jpeg(img)), _frame(1, jpeg=to_jpeg(GREY))])
    assert teacher.version == "boot-1"
    assert all((v.label in (EAN, EANS[1]) and 0 < v.confidence <= 1) or v.reason == "sees_nothing"
               for v in votes)


def test_teacher_from_the_registry_and_a_tampered_artifact(tmp_path) -> None:
    from edge_agent.contract.schemas import parse_device_model
    from edge_agent.lake import Lake
    from flywheel.fleet.bootstrap import install_model_slot
    from flywheel.learner import registry
    from tests.support.registry import register_model

    lake = Lake.at_path(tmp_path / "lake")
    assert TeacherLabeler.from_registry(lake, tmp_path / "w").load_error == "no teacher model"
    slot = install_model_slot(tmp_path / "m", ["none", EAN, EANS[1]], version="cls-1", seed=0) / "slots" / "a"
    device = parse_device_model((slot / "model.json").read_bytes())
    register_model(lake, "cls-1", {"model.onnx": (slot / "model.onnx").read_bytes()},
                   classes=["none", EAN, EANS[1]], device=device, production=True)
    teacher = TeacherLabeler.from_registry(lake, tmp_path / "w")
    assert teacher.model is not None and teacher.version == "cls-1"
    lake.put(registry.key("cls-1", "model.onnx"), b"tampered")
    broken = TeacherLabeler.from_registry(lake, tmp_path / "w2")
    assert broken.model is None and "sha256" in broken.load_error
    assert {v.reason for v in broken.label([_frame(0)])} == {"no_model"}
