"""Offline ultralytics settings: a classify val folder that lacks a class (a class seen in one
session only cannot validate without leakage) is a warning while training, not an ERROR line."""

from __future__ import annotations

import logging

import polars as pl

from flywheel.learner import yolo_env
from flywheel.learner.config import DatasetSpec
from flywheel.learner.datasets import build_members
from flywheel.learner.materialize import materialize_classify
from tests.learner.fakes import SKUS, fake_frames


def test_a_val_set_without_every_class_is_a_warning_while_training(tmp_path):
    yolo_env.configure()
    from ultralytics.data.utils import check_cls_dataset

    members, _ = build_members(fake_frames(n_sessions=6), DatasetSpec(), set(SKUS))
    members = members.with_columns(  # the first SKU never reaches validation
        pl.when(pl.col("label") == SKUS[0]).then(pl.lit("train")).otherwise(pl.col("split")).alias("split"))
    root = materialize_classify(members, sorted(SKUS), tmp_path / "data", 32)

    records: list[logging.LogRecord] = []
    keep = logging.Handler(logging.DEBUG)
    keep.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("ultralytics")
    logger.addHandler(keep)
    try:
        check_cls_dataset(str(root))  # ultralytics' own check, as model.train runs it
        with yolo_env.tolerate_val_class_gaps():
            check_cls_dataset(str(root))
        check_cls_dataset(str(root))  # the filter is gone again afterwards
    finally:
        logger.removeHandler(keep)
    gaps = [r for r in records if "requires 3 classes" in r.getMessage()]
    assert [r.levelno for r in gaps] == [logging.ERROR, logging.WARNING, logging.ERROR]


def test_use_cpus_restores_workers_and_threads_after_ultralytics_sets_its_own():
    """ultralytics' trainer sets workers=0 and cpu_count - 1 torch threads on CPU; the callback
    runs after that (on_pretrain_routine_start) and splits the task's CPUs: loaders, then threads."""
    from types import SimpleNamespace

    import torch

    yolo_env.configure()
    from ultralytics import YOLO

    before = torch.get_num_threads()
    try:
        for cpus, workers, expected in ((3, 1, (1, 2)), (1, 1, (0, 1))):  # 1 CPU: no worker
            model = YOLO("yolov8n-cls.yaml", task="classify")
            yolo_env.use_cpus(model, cpus=cpus, workers=workers)
            trainer = SimpleNamespace(args=SimpleNamespace(workers=0))  # as ultralytics left it
            for callback in model.callbacks["on_pretrain_routine_start"]:
                callback(trainer)
            assert (trainer.args.workers, torch.get_num_threads()) == expected
    finally:
        torch.set_num_threads(before)


def test_stop_at_shrinks_the_plan_to_the_epochs_that_end_by_the_deadline():
    """After each epoch (before validation): planned epochs that would end past the deadline at the
    mean epoch time are dropped and the schedule re-planned over the rest; none left: this epoch is
    the last (it then validates and is saved as the final one)."""
    import time
    from types import SimpleNamespace

    yolo_env.configure()
    from ultralytics import YOLO

    now = time.time()
    # two of 10 planned epochs done in 20 s (10 s each): (deadline, epochs planned after, stop)
    for deadline, epochs, stops in ((None, 10, False), (now + 1000, 10, False),
                                    (now + 35, 5, False), (now + 5, 2, True), (now - 1, 2, True)):
        model = YOLO("yolov8n-cls.yaml", task="classify")
        yolo_env.stop_at(model, deadline)
        replanned = []
        trainer = SimpleNamespace(epoch=1, start_epoch=0, train_time_start=now - 20, stop=False,
                                  epochs=10, args=SimpleNamespace(epochs=10),
                                  scheduler=SimpleNamespace(last_epoch=0))
        trainer._setup_scheduler = lambda t=trainer: replanned.append(t.epochs)  # noqa: B023
        for callback in model.callbacks["on_train_epoch_end"]:
            callback(trainer)
        assert (trainer.epochs, trainer.args.epochs, trainer.stop) == (epochs, epochs, stops), deadline
        assert replanned == ([epochs] if epochs not in (10, 2) else [])
        assert trainer.scheduler.last_epoch == (1 if replanned else 0)


def test_stop_at_paces_by_the_epochs_after_the_first_and_grows_a_cut_plan_back(monkeypatch):
    """The first epoch is slow (caches, warm-up): counted in the mean it cut warm turns 60-110 s
    short. Once a later epoch is timed, it alone sets the pace, and a plan cut on the first epoch's
    pace grows back, never past the configured epochs."""
    import time
    from types import SimpleNamespace

    yolo_env.configure()
    from ultralytics import YOLO

    t0 = 1_000_000.0
    model = YOLO("yolov8n-cls.yaml", task="classify")
    yolo_env.stop_at(model, t0 + 100)
    (callback,) = model.callbacks["on_train_epoch_end"][-1:]
    replanned = []
    trainer = SimpleNamespace(epoch=0, start_epoch=0, train_time_start=t0, stop=False, epochs=10,
                              args=SimpleNamespace(epochs=10), scheduler=SimpleNamespace(last_epoch=0))
    trainer._setup_scheduler = lambda: replanned.append(trainer.epochs)
    # (epoch, when it ended, epochs planned after): 40 s first epoch, then 5 s epochs
    for epoch, at, planned in ((0, 40, 2), (1, 45, 10), (2, 50, 10), (3, 70, 7)):
        monkeypatch.setattr(time, "time", lambda at=at: t0 + at)
        trainer.epoch = epoch
        callback(trainer)
        assert (trainer.epochs, trainer.args.epochs, trainer.stop) == (planned, planned, False), epoch
    # epoch 3 took 20 s: pace (5 + 5 + 20) / 3 = 10 s, 30 s left: 3 more after epoch 3
    assert replanned == [2, 10, 7]


def test_precision_resolves_to_what_the_cpu_computes_natively_and_maps_to_ultralytics_amp(monkeypatch):
    """"auto" is bf16 only where the CPU has native bfloat16 (emulated is slower); fp32 is
    ultralytics' amp=False; bf16 is amp="bf16", with the trainer's autocast allowed on the CPU
    (ultralytics raises for bf16 off CUDA) and every other request passed through unchanged."""
    import pytest
    import torch

    yolo_env.configure()
    import ultralytics.engine.trainer as trainer

    for native in (True, False):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda n=native: n)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        assert yolo_env.resolve_precision("auto") == ("bf16" if native else "fp32")
    assert yolo_env.resolve_precision("fp32") == "fp32" and yolo_env.amp_arg("fp32") is False
    with pytest.raises(ValueError, match="precision"):
        yolo_env.resolve_precision("fp16")

    assert yolo_env.amp_arg("bf16") == "bf16"
    wrapped = trainer.autocast
    assert yolo_env.amp_arg("bf16") == "bf16" and trainer.autocast is wrapped  # wrapped once
    with wrapped(torch.bfloat16, device="cpu"):
        y = torch.nn.functional.linear(torch.ones(2, 4), torch.ones(3, 4))
    assert y.dtype == torch.bfloat16
    with wrapped(False, device="cpu"):
        assert torch.nn.functional.linear(torch.ones(2, 4), torch.ones(3, 4)).dtype == torch.float32


def test_a_bf16_training_on_the_cpu_learns(tmp_path):
    """A real ultralytics classify training in bf16 on the CPU: it runs, the loss falls, and the
    checkpoint records the precision it trained at (accuracy: the oracle, README)."""
    import numpy as np
    import torch
    from PIL import Image

    yolo_env.configure()
    from ultralytics import YOLO

    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("val", 4)):
        for c, colour in enumerate(((220, 40, 40), (40, 40, 220))):
            d = tmp_path / "data" / split / f"c{c}"
            d.mkdir(parents=True)
            for i in range(n):
                img = np.clip(rng.normal(colour, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"{i}.png")
    model = YOLO("yolov8n-cls.yaml", task="classify")
    yolo_env.use_cpus(model, 1, 0)
    model.train(data=str(tmp_path / "data"), epochs=3, imgsz=32, batch=16, device="cpu",
                amp=yolo_env.amp_arg("bf16"), workers=0, plots=False, verbose=False, seed=0,
                optimizer="AdamW", lr0=0.002, project=str(tmp_path / "runs"), name="bf16")
    from flywheel.learner.training_io import read_curves

    curves = read_curves(tmp_path / "runs" / "bf16" / "results.csv")
    assert len(curves) == 3 and curves[-1]["train/loss"] < curves[0]["train/loss"]
    ckpt = torch.load(tmp_path / "runs" / "bf16" / "weights" / "last.pt", weights_only=False)
    assert ckpt["train_args"]["amp"] == "bf16"
