"""Fine-tuning from the parent (flywheel/learner/warm_start.py): the head is reshaped by class name,
ultralytics transfers every tensor, the run records its init, and it starts where the parent was."""

from __future__ import annotations

import pytest

from flywheel.learner.config import TrainConfig
from flywheel.learner.warm_start import WarmStart, adapt_checkpoint, oversample_rare
from tests.learner.fakes import SKUS, fake_frames


def _parent(tmp_path, names: list[str]):
    import torch
    from ultralytics.nn.tasks import ClassificationModel

    torch.manual_seed(0)
    model = ClassificationModel("yolov8n-cls.yaml", nc=len(names), verbose=False)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # weights unlike a fresh model's
    path = tmp_path / "parent.pt"
    torch.save({"model": model, "ema": None}, path)
    return model.eval(), path


def test_head_rows_follow_class_names_and_every_tensor_transfers(tmp_path):
    import torch
    from ultralytics.nn.tasks import ClassificationModel

    parent_names = ["a", "b", "empty"]
    parent, src = _parent(tmp_path, parent_names)
    names = ["b", "c", "empty", "a"]  # reordered, one new class
    out = tmp_path / "init.pt"
    copied, new, transferred = adapt_checkpoint(src, parent_names, names, TrainConfig(), out)
    assert (copied, new) == (3, ["c"])
    n_tensors = len(parent.state_dict())
    assert transferred == f"{n_tensors}/{n_tensors}"
    # what ultralytics' trainer does with pretrained=<path>: a yaml model for 4 classes, then load
    child = ClassificationModel("yolov8n-cls.yaml", nc=4, verbose=False)
    child.load(torch.load(out, map_location="cpu", weights_only=False))
    child.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        p_logits = parent.model[-1].linear(_features(parent, x))
        c_logits = child.model[-1].linear(_features(child, x))
    for j, n in enumerate(names):
        if n in parent_names:
            torch.testing.assert_close(c_logits[:, j], p_logits[:, parent_names.index(n)])
    lin = child.model[-1].linear.requires_grad_(False)
    assert float(lin.weight[1].abs().max()) < 0.1  # the new class starts small
    assert float(lin.bias[1]) == pytest.approx(float(parent.model[-1].linear.bias.detach().mean()), abs=1e-6)


def _features(model, x):
    """The classifier's input: everything before the head's last linear layer."""
    for m in model.model[:-1]:
        x = m(x)
    head = model.model[-1]
    return head.drop(head.pool(head.conv(x)).flatten(1))


def test_a_fine_tune_trains_finetune_epochs_at_most_and_scratch_all():
    cfg = TrainConfig(epochs=30, finetune_epochs=10)
    assert WarmStart("parent", "m1").epochs(cfg) == 10
    assert WarmStart("scratch", reason="no production model yet").epochs(cfg) == 30
    assert WarmStart("parent", "m1").epochs(TrainConfig(epochs=3, finetune_epochs=10)) == 3  # demo, tests


def test_rare_classes_are_repeated_by_hard_links(tmp_path):
    counts = {"0000": 40, "0001": 10, "0002": 1}
    for name, n in counts.items():
        (tmp_path / name).mkdir()
        for i in range(n):
            (tmp_path / name / f"f{i}.png").write_bytes(b"x")
    assert oversample_rare(tmp_path, 0.0) == {}
    added = oversample_rare(tmp_path, 0.5)
    # r = max(1, sqrt(0.5 * 40 / n)): 1 for 40 frames, sqrt(2) for 10, sqrt(20) for 1
    assert added == {"0001": 4, "0002": 3}
    after = {n: len(list((tmp_path / n).iterdir())) for n in counts}
    assert after == {"0000": 40, "0001": 14, "0002": 4}
    assert (tmp_path / "0002" / "f0~r1.png").stat().st_nlink == 4  # links, not copies


def _weights(lake, model_id: str, tmp_path) -> dict:
    import torch

    from flywheel.learner import registry

    ckpt = torch.load(registry.fetch_file(lake, model_id, "weights.pt", tmp_path), map_location="cpu",
                      weights_only=False)
    return (ckpt.get("ema") or ckpt["model"]).float().state_dict()


@pytest.mark.slow
def test_a_turn_fine_tunes_from_its_parent(local_lake, tmp_path):
    """Parent on two SKUs; the child's dataset adds a third. At learning rate 0 the child is its
    parent (backbone and the known classes' head rows) through ultralytics' own training, and its
    card says so; from scratch it is not."""
    import torch

    from flywheel.learner.config import DatasetSpec
    from flywheel.learner.datasets import write_dataset_version
    from flywheel.learner.train import TrainRequest, run_training

    catalog = set(SKUS)
    spec = DatasetSpec(include_empty=False)
    old, _ = write_dataset_version(local_lake, fake_frames(n_sessions=5, skus=SKUS[:2]), spec,
                                   catalog, ["old"])
    new, _ = write_dataset_version(local_lake, fake_frames(n_sessions=5, seed=1), spec, catalog,
                                   ["new"])
    cfg = TrainConfig(epochs=1, imgsz=32, batch=8, nbs=0, num_cpus=1, roi=None)  # no empty class

    def train(version: str, model_id: str, parent: str | None = None, **kw):
        return run_training(TrainRequest(local_lake.uri, None, version, TrainConfig(
            **{**cfg.as_dict(), **kw}), model_id, parent_model_id=parent, catalog=tuple(SKUS)))

    parent = train(old.version, "parent")
    assert parent.card.training["init"] == {
        "mode": "scratch", "parent": None, "reason": "no production model yet", "copied_classes": 0,
        "new_classes": [], "transferred": ""}
    fine = train(new.version, "fine", "parent", lr0=0.0)
    scratch = train(new.version, "scratch", "parent", lr0=0.0, init="scratch")
    init = fine.card.training["init"]
    assert init["mode"] == "parent" and init["parent"] == "parent"
    assert init["copied_classes"] == 2 and init["new_classes"] == [SKUS[2]]
    assert fine.card.lineage.parent_model == "parent"
    assert scratch.card.training["init"]["reason"] == "config init=scratch"
    p, f, s = (_weights(local_lake, m, tmp_path) for m in ("parent", "fine", "scratch"))
    conv = "model.0.conv.weight"
    torch.testing.assert_close(f[conv], p[conv])
    assert not torch.allclose(s[conv], p[conv])
    head = "model.9.linear.weight"  # classes in catalog order: both SKUs keep their rows
    torch.testing.assert_close(f[head][:2], p[head])
