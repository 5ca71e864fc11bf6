"""`flywheel import`: every format into the depot, validated first; nothing half-written."""

from __future__ import annotations

import io
import json

import polars as pl
import pytest
from PIL import Image

from flywheel.cli import main
from flywheel.imports.catalog import import_catalog_file
from flywheel.imports.dataset import DatasetImportError, import_dataset
from flywheel.learner import reference_sets as depot_sets
from flywheel.learner.config import EMPTY_CLASS
from flywheel.sim import photos

CLASSES = ["T-shirt/top", "cola 'zero'", "chips"]  # hostile ids: a slash, quotes, a space


@pytest.fixture
def lake(local_lake, tmp_path):
    import_catalog_file(local_lake, photos.catalog_csv(tmp_path / "catalog.csv", CLASSES))
    return local_lake


def _folder(tmp_path, name, n=6, seed=0):
    return photos.write_imagefolder(tmp_path / name, photos.dataset(CLASSES, n, seed))


def _mapping(tmp_path):
    p = tmp_path / "map.csv"
    p.write_text("class,id\nT-shirt_top,T-shirt/top\ncola 'zero',cola 'zero'\nchips,chips\nbackground,\n")
    return p


def _manual(lake) -> pl.DataFrame:
    return depot_sets.read_manual_collection(lake)[1]


def test_imagefolder_into_manual_collection(lake, tmp_path):
    root = _folder(tmp_path, "shoot")
    (root / "chips" / "notes.txt").write_text("not a photo")
    good = (root / "chips" / "0012.jpg").read_bytes()
    (root / "chips" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "background").mkdir()
    (root / "background" / "b.png").write_bytes(_basket_png())
    rep = import_dataset(lake, root, mapping_file=_mapping(tmp_path))
    assert rep.fmt == "imagefolder" and rep.task == "classify" and rep.frames == 19
    assert rep.class_counts == {"T-shirt/top": 6, "chips": 6, "cola 'zero'": 6, EMPTY_CLASS: 1}
    assert [s for s, _ in rep.rejected] == ["chips/truncated.jpg"]
    assert "unreadable image" in rep.rejected[0][1] and "truncated" in rep.rejected[0][1]
    assert rep.skipped == [("chips/notes.txt", "not an image file (.txt)")]
    df = _manual(lake)
    assert df.height == 19 and df["frame_id"].str.starts_with("img-").all()
    assert df.filter(pl.col("is_empty"))["sku"].to_list() == [None]
    stored = df.filter(pl.col("source") == "shoot/chips/0012.jpg")["image_png"][0]
    assert stored == good  # the photo as it was: no re-encode
    again = import_dataset(lake, root, mapping_file=_mapping(tmp_path))
    assert again.new_frames == 0 and not again.imported.created
    more = import_dataset(lake, _folder(tmp_path, "shoot2", n=2, seed=5), mapping_file=_mapping(tmp_path))
    assert more.new_frames == 6 and _manual(lake).height == 25  # appended, not replaced


def _basket_png() -> bytes:
    from flywheel.sim.scene import render_basket

    buf = io.BytesIO()
    Image.fromarray(render_basket(*photos.SIZE)).save(buf, format="PNG")
    return buf.getvalue()


def test_unknown_and_empty_classes_import_nothing(lake, tmp_path, capsys):
    root = _folder(tmp_path, "shoot", n=2)
    (root / "mystery").mkdir()
    (root / "mystery" / "m.jpg").write_bytes((root / "chips" / "0004.jpg").read_bytes())
    (root / "nothing-here").mkdir()
    with pytest.raises(DatasetImportError) as e:
        import_dataset(lake, root, mapping_file=_mapping(tmp_path))
    errors = e.value.report.errors
    assert "class 'mystery' (1 image(s)): not in the mapping file" in errors
    assert "class 'nothing-here' has no usable images" in errors
    assert depot_sets.read_current(lake, depot_sets.MANUAL_AREA) is None  # nothing written
    # without a mapping, the folder name must be a catalog id or product name
    assert main(["import", str(root), "--lake", lake.uri]) == 2
    out = capsys.readouterr().out
    assert "NOTHING IMPORTED" in out and "'T-shirt_top' (2 image(s)): no catalog id or product name" in out


def test_frozen_set_leaks_and_is_never_rewritten(lake, tmp_path):
    test = photos.dataset(CLASSES, 4, seed=9)
    troot = photos.write_imagefolder(tmp_path / "test", test)
    rep = import_dataset(lake, troot, standard_set="shelf", mapping_file=_mapping(tmp_path))
    assert rep.imported.created and rep.imported.rows == 12
    assert depot_sets.read_standard_sets(lake, ["shelf"])[0]["shelf"].height == 12
    # the same photos again: a no-op; different photos under the frozen name: refused
    assert not import_dataset(lake, troot, standard_set="shelf",
                              mapping_file=_mapping(tmp_path)).imported.created
    other = photos.write_imagefolder(tmp_path / "other", photos.dataset(CLASSES, 2, seed=3))
    with pytest.raises(DatasetImportError, match="'shelf' is frozen"):
        import_dataset(lake, other, standard_set="shelf", mapping_file=_mapping(tmp_path))
    # training photos with one exact copy and one re-encoded, resized copy of test photos
    root = _folder(tmp_path, "train", n=5, seed=1)
    (root / "chips" / "copy.jpg").write_bytes(test[9].jpeg)
    with Image.open(io.BytesIO(test[1].jpeg)) as im:
        im.resize((200, 150)).save(root / "T-shirt_top" / "resaved.png")
    with pytest.raises(DatasetImportError) as e:
        import_dataset(lake, root, mapping_file=_mapping(tmp_path))
    (err,) = e.value.report.errors
    assert err.startswith("2 image(s) are also in frozen test set 'shelf' "
                          "({'exact': 1, 'near-duplicate': 1})")
    assert depot_sets.read_current(lake, depot_sets.MANUAL_AREA) is None
    (root / "chips" / "copy.jpg").unlink()
    (root / "T-shirt_top" / "resaved.png").unlink()
    assert import_dataset(lake, root, mapping_file=_mapping(tmp_path)).frames == 15  # no false alarm
    # and the other way round: a new test set holding a training photo
    (other / "chips" / "train.jpg").write_bytes((root / "chips" / "0010.jpg").read_bytes())
    with pytest.raises(DatasetImportError, match="also in the training data 'manual_collection'"):
        import_dataset(lake, other, standard_set="shelf2", mapping_file=_mapping(tmp_path))


def test_split_by_folder_that_starves_a_class_is_refused(lake, tmp_path):
    root = _folder(tmp_path, "one-folder-per-class", n=3)
    with pytest.raises(DatasetImportError, match=r"split by folder leaves 1 class\(es\) without training"):
        import_dataset(lake, root, mapping_file=_mapping(tmp_path), group="folder")
    assert import_dataset(lake, root, mapping_file=_mapping(tmp_path)).frames == 9  # by image: fine


def test_yolo_detect_boxes_and_bad_labels(lake, tmp_path):
    shots = photos.dataset(CLASSES, 4)
    yaml = photos.write_yolo_detect(tmp_path / "yolo", {"train": shots[:9], "val": shots[9:]}, CLASSES)
    lbl = tmp_path / "yolo" / "labels" / "train"
    (lbl / "0000.txt").write_text("0 0.9 0.5 0.4 0.2\n")  # reaches x = 1.1: outside the image
    (lbl / "0004.txt").write_text("1 0.5 0.5 0.2 0.2\n2 0.3 0.3 0.1 0.1\n")  # two objects: both kept
    (lbl / "0005.txt").write_text("1 0.5 0.5 0.2 0.2\n2 0.95 0.3 0.2 0.1\n")  # the 2nd is outside
    (lbl / "0008.txt").write_text("7 0.5 0.5 0.2 0.2\n")
    (lbl / "0003.txt").write_text("")  # background
    rep = import_dataset(lake, yaml)
    assert rep.fmt == "yolo-detect" and rep.task == "detect"
    why = dict(rep.rejected)
    assert "lies outside the 160x120 image" in why["images/train/0000.jpg"]
    assert "object 2 of 2 (chips): box" in why["images/train/0005.jpg"]
    assert "class index 7 not in names" in why["images/train/0008.jpg"]
    assert "images/train/0004.jpg" not in why
    assert rep.frames == 9 and rep.class_counts[EMPTY_CLASS] == 1
    two = _manual(lake).filter(pl.col("source") == "yolo/images/train/0004.jpg")
    objs = json.loads(two["objects"][0])
    assert [o[0] for o in objs] == [CLASSES[1], CLASSES[2]] and two["sku"][0] == CLASSES[1]
    assert [round(v) for v in objs[1][1:]] == [round(0.25 * 160), round(0.25 * 120), round(0.35 * 160),
                                                round(0.35 * 120)]
    df = _manual(lake).filter(pl.col("source") == "yolo/images/val/0000.jpg")
    x1, y1, x2, y2 = shots[9].box
    assert df["sku"][0] == shots[9].cls
    assert [round(v) for v in df["item_box"][0]] == [x1, y1, x2, y2]


def test_yolo_classify_subset_as_standard_set(lake, tmp_path):
    root = tmp_path / "yc"
    photos.write_imagefolder(root, photos.dataset(CLASSES, 3, seed=1), subset="train")
    photos.write_imagefolder(root, photos.dataset(CLASSES, 2, seed=2), subset="test")
    rep = import_dataset(lake, root, standard_set="yc-test", subset="test", mapping_file=_mapping(tmp_path))
    assert rep.fmt == "yolo-classify" and rep.frames == 6
    assert depot_sets.standard_set_names(lake) == ["yc-test"]


def test_coco_and_label_studio(lake, tmp_path):
    shots = photos.dataset(CLASSES, 3, seed=4)
    rep = import_dataset(lake, photos.write_coco(tmp_path / "coco", shots), standard_set="coco")
    assert rep.fmt == "coco" and rep.task == "detect" and rep.frames == 9  # category names = ids
    test = depot_sets.read_standard_sets(lake, ["coco"])[0]["coco"]
    row = test.filter(pl.col("source") == "coco/p0004.jpg")
    assert row["sku"][0] == shots[4].cls and [round(v) for v in row["item_box"][0]] == list(shots[4].box)
    ls = photos.write_label_studio(tmp_path / "ls", photos.dataset(CLASSES, 3, seed=6), boxes=True)
    rep = import_dataset(lake, ls, images_dir=tmp_path / "ls" / "images")
    assert rep.fmt == "labelstudio" and rep.task == "detect" and rep.frames == 9 and not rep.rejected
    ls2 = photos.write_label_studio(tmp_path / "ls2", photos.dataset(CLASSES, 2, seed=7), boxes=False)
    rep = import_dataset(lake, ls2, images_dir=tmp_path / "ls2" / "images")
    assert rep.task == "classify" and rep.frames == 6
    assert _manual(lake).height == 15


def test_multi_object_detection_keeps_every_box_and_classification_says_why(lake, tmp_path):
    """Real multi-object data (2-3 products per photo) from COCO and YOLO: every box imports and
    reaches the detection training files; classification refuses such frames with a reason."""
    from flywheel.learner.config import DatasetSpec
    from flywheel.learner.datasets import label_frames, member_classes
    from flywheel.learner.materialize import materialize_detect

    scenes = photos.scenes(CLASSES, 8, seed=11)
    assert all(len(p.objects) >= 2 for p in scenes)
    rep = import_dataset(lake, photos.write_coco(tmp_path / "coco", scenes), standard_set="baskets")
    assert rep.task == "detect" and rep.frames == 8 and not rep.rejected
    assert sum(rep.class_counts.values()) == sum(len(p.objects) for p in scenes)  # objects, not images
    test = depot_sets.read_standard_sets(lake, ["baskets"])[0]["baskets"]
    row = test.filter(pl.col("source") == "baskets/p0003.jpg")
    assert [(o[0], [round(v) for v in o[1:]]) for o in json.loads(row["objects"][0])] == [
        (c, list(b)) for c, b in scenes[3].objects]
    members, rejects = label_frames(test, DatasetSpec(task="detect"))
    assert members.height == 8 and member_classes(members) == sorted(CLASSES)
    yaml = materialize_detect(members.with_columns(pl.lit("val").alias("split")), sorted(CLASSES),
                              tmp_path / "mat")
    lines = sum(len(p.read_text().splitlines()) for p in (yaml.parent / "labels" / "val").glob("*.txt"))
    assert lines == sum(len(p.objects) for p in scenes)  # every box is a YOLO label line
    _, rejects = label_frames(test, DatasetSpec(task="classify"))
    assert rejects == {"classify_multi_object": 8}
    # the same scenes in YOLO's layout import the same boxes
    more = photos.scenes(CLASSES, 6, seed=12)
    rep = import_dataset(lake, photos.write_yolo_detect(tmp_path / "y", {"train": more}, CLASSES))
    assert rep.frames == 6 and sum(rep.class_counts.values()) == sum(len(p.objects) for p in more)
    # a classification dataset (COCO without boxes) with two labelled objects in one image: refused
    doc = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    for a in doc["annotations"]:
        del a["bbox"]
    (tmp_path / "coco" / "cls.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetImportError) as err:
        import_dataset(lake, tmp_path / "coco" / "cls.json", images_dir=tmp_path / "coco" / "images")
    assert err.value.report.task == "classify"
    assert "labelled objects in one image of a classification dataset" in dict(err.value.report.rejected)[
        "p0000.jpg"]
