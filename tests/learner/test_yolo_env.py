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


def test_stop_at_ends_training_when_the_next_epoch_would_pass_the_deadline():
    """After each epoch (before validation), a run whose next epoch would end past the deadline at
    its mean epoch time stops there; that epoch then validates and is saved as the last."""
    import time
    from types import SimpleNamespace

    yolo_env.configure()
    from ultralytics import YOLO

    now = time.time()
    for deadline, stops in ((None, False), (now + 15, False), (now + 5, True), (now - 1, True)):
        model = YOLO("yolov8n-cls.yaml", task="classify")
        yolo_env.stop_at(model, deadline)
        # two epochs done in 20 s: the next ends ~10 s from now
        trainer = SimpleNamespace(epoch=1, start_epoch=0, train_time_start=now - 20, stop=False)
        for callback in model.callbacks["on_train_epoch_end"]:
            callback(trainer)
        assert trainer.stop is stops, deadline
