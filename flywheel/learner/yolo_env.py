"""Offline-safe ultralytics: a project config dir with a font, no downloads, no telemetry.

Must run before `ultralytics` is first imported in a process (it reads YOLO_CONFIG_DIR at import),
so every entry point that trains, exports or loads a YOLO model calls `configure()` first, including
the Ray worker that trains.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FONT = REPO_ROOT / "flywheel" / "sim" / "fonts" / "DejaVuSans.ttf"


def default_config_dir() -> Path:
    return Path(os.environ.get("FLYWHEEL_YOLO_CONFIG_DIR", REPO_ROOT / "var" / "yolo_config"))


def configure(config_dir: str | Path | None = None) -> Path:
    """Set YOLO_OFFLINE / YOLO_CONFIG_DIR and place the font ultralytics would otherwise download."""
    cfg = Path(os.environ.get("YOLO_CONFIG_DIR") or config_dir or default_config_dir())
    font_dst = cfg / "Ultralytics" / "Arial.ttf"
    if not font_dst.exists():
        font_dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = font_dst.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(FONT, tmp)
        os.replace(tmp, font_dst)  # atomic: parallel workers may race here
    os.environ["YOLO_CONFIG_DIR"] = str(cfg)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ.setdefault("YOLO_VERBOSE", "False")
    import ultralytics.utils as uu

    # Ray Tune's callback would try to report from a plain Ray task; hub/wandb/etc. need network.
    wanted = {"raytune": False, "sync": False, "wandb": False, "mlflow": False, "tensorboard": False,
              "clearml": False, "comet": False, "dvc": False, "neptune": False, "hub": False,
              "vscode_msg": False, "openvino_msg": False,
              "runs_dir": str(cfg / "runs"), "weights_dir": str(cfg / "weights"),
              "datasets_dir": str(cfg / "datasets")}
    changes = {k: v for k, v in wanted.items() if k in uu.SETTINGS and uu.SETTINGS[k] != v}
    if changes:
        uu.SETTINGS.update(changes)
    return cfg


class _ValClassGap(logging.Filter):
    """ultralytics logs an ERROR when the classify val folder lacks some classes. A split by session
    can leave out, on purpose, a class seen in one session only (the dataset's val_class_coverage
    check names it), so that record is lowered to a warning, which the quiet logger does not print."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and "classes (requires" in str(record.msg):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


@contextmanager
def tolerate_val_class_gaps() -> Iterator[None]:
    """While training: a val set without every class is expected, not an error."""
    logger = logging.getLogger("ultralytics")
    gap = _ValClassGap()
    logger.addFilter(gap)
    try:
        yield
    finally:
        logger.removeFilter(gap)


def use_cpus(model, cpus: int, workers: int) -> None:
    """Train `model` (an ultralytics YOLO) on `cpus` cores: up to `workers` data-loading processes
    (decoding and augmentation, RandAugment included; at most cpus - 1, so 1 CPU has none) and
    torch threads for the rest.
    ultralytics on CPU trains with cpu_count - 1 torch threads (1 on 2 cores) and sets workers to 0
    in the trainer, so augmentation ran in the training thread and a 2-core machine used one core.
    The trainer calls `on_pretrain_routine_start` after it set its own and before it builds the
    loaders. Seeded runs stay reproducible for a fixed `workers` (each worker is seeded from the
    run's seed; another count draws other augmentations)."""
    workers = max(0, min(workers, cpus - 1))
    threads = max(1, cpus - workers)

    def restore(trainer) -> None:
        import torch

        trainer.args.workers = workers
        torch.set_num_threads(threads)

    model.add_callback("on_pretrain_routine_start", restore)


def resolve_precision(precision: str) -> str:
    """"bf16" or "fp32" for a training `precision` ("auto", "fp32", "bf16"): "auto" is bf16 where
    this CPU computes bfloat16 natively (AVX512-BF16 or AMX), else fp32 (emulated bf16 is slower)."""
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', not {precision!r}")
    if precision != "auto":
        return precision
    import torch

    native = any(getattr(torch.cpu, probe, lambda: False)()
                 for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return "bf16" if native else "fp32"


def amp_arg(precision: str) -> bool | str:
    """ultralytics' `amp` train argument for a CPU training at `precision` (resolved): False, or
    "bf16" (the forward and backward under torch's CPU bfloat16 autocast; weights, optimizer and
    EMA stay fp32, so export and golden checks are as before). The crop classifier's epoch at 96 px
    takes 2.1x less time here in bf16 (README, "Training in bfloat16"). ultralytics allows bf16
    autocast on CUDA only, so its trainer's `autocast` is wrapped to allow it on the CPU too."""
    if resolve_precision(precision) == "fp32":
        return False
    _allow_cpu_bf16()
    return "bf16"


def _allow_cpu_bf16() -> None:
    import torch
    import ultralytics.engine.trainer as trainer

    original = trainer.autocast
    if getattr(original, "cpu_bf16", False):
        return

    def autocast(enabled, device: str = "cuda"):
        if device == "cpu" and enabled is torch.bfloat16:
            return torch.amp.autocast("cpu", dtype=torch.bfloat16)
        return original(enabled, device)

    autocast.cpu_bf16 = True  # type: ignore[attr-defined]
    trainer.autocast = autocast


def stop_at(model, deadline: float | None) -> None:
    """End `model`'s training (an ultralytics YOLO) by `deadline` (a time.time()): after each epoch,
    when the planned epochs would end past it at the current pace, the plan shrinks to the epochs
    that fit, and the learning-rate schedule is re-planned over them (as ultralytics' own `time=`
    mode does after each epoch), so a cut run still ends at its final rate; none fits: this epoch is
    the last. The last epoch validates and is saved as a final one (`on_train_epoch_end` runs
    before ultralytics decides that). The pace is the mean of the epochs after the first once one
    is timed: the first is slower (dataset scan, caches, warm-up) and, counted in, cut warm turns
    60-110 s short of the budget; a plan cut early grows back as the pace settles, never past the
    configured epochs. None: no limit. Unlike `time=`, which also grows the plan to fill the time (a
    tiny dataset would train for the whole budget), a run that fits repeats exactly (seeded)."""
    if deadline is None:
        return
    ends: dict[int, float] = {}  # epoch -> when it ended (its training, before validation)
    most: list[int] = []  # the configured epochs, as the first check saw them

    def check(trainer) -> None:
        import time

        now = time.time()
        if not most:
            most.append(trainer.epochs)
        ends[trainer.epoch] = now
        later = [ends[e] - ends[e - 1] for e in ends if e - 1 in ends]
        pace = (sum(later) / len(later) if later
                else (now - trainer.train_time_start) / (trainer.epoch - trainer.start_epoch + 1))
        fit = min(most[0], trainer.epoch + 1 + int(max(0.0, deadline - now) // pace))
        if fit == trainer.epochs:
            return
        trainer.epochs = trainer.args.epochs = fit
        if fit <= trainer.epoch + 1:
            trainer.stop = True
        else:  # ultralytics' time mode does exactly this (trainer.py, end of an epoch)
            trainer._setup_scheduler()
            trainer.scheduler.last_epoch = trainer.epoch

    model.add_callback("on_train_epoch_end", check)
