"""What every `spkid train-*` command does around the Trainer: config, exp dir, logging, seeds,
devices, DDP, --init / --checkpoint / auto-resume."""
from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from spkid.errors import SpkidError
from spkid.train.config import load_config, save_config
from spkid.train.distributed import cleanup, init_distributed, pick_device, relaunch_with_torchrun
from spkid.train.trainer import Task, Trainer, load_initial_weights

logger = logging.getLogger("spkid.train")


def strip_nprocs(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nprocs":
            skip = True
        elif not arg.startswith("--nprocs="):
            out.append(arg)
    return out


def _log_to_file(exp_dir: Path) -> logging.Handler:
    exp_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(exp_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s (%(name)s) %(message)s"))
    logging.getLogger("spkid").addHandler(handler)
    return handler


def run_training(build_task: Callable[..., Task], defaults: dict, *, data_dir: str, output: str,
                 config_file: str | None, opts: tuple[str, ...], checkpoint: str | None, init: str | None,
                 device: str, nprocs: int, argv: list[str], **task_kwargs) -> dict[str, float]:
    """Train (or resume) into `output`; returns the last logged metrics (rank 0)."""
    import os

    if nprocs > 1 and "WORLD_SIZE" not in os.environ:
        status = relaunch_with_torchrun(nprocs, strip_nprocs(argv))
        if status != 0:
            raise SpkidError(f"distributed training failed (exit status {status}); see {output}/train.log")
        return {}
    exp_dir = Path(output)
    saved = exp_dir / "config.yaml"
    if config_file is None and not opts and saved.exists():
        config_file = str(saved)  # resuming: the run's own effective config
    config = load_config(defaults, config_file, opts)
    dev = pick_device(device, _rank_info())
    dist_info = init_distributed(dev)
    handler = _log_to_file(exp_dir) if dist_info.is_main else None
    if not dist_info.is_main:
        logging.getLogger("spkid").setLevel(logging.WARNING)
    try:
        seed = int(config["train"]["seed"])
        random.seed(seed + dist_info.rank)
        np.random.seed(seed + dist_info.rank)
        torch.manual_seed(seed)  # same initial weights on every rank
        task = build_task(config, data_dir, dist_info.rank, dist_info.world_size, **task_kwargs)
        trainer = Trainer(task, config, exp_dir, dev, dist_info)
        resuming = checkpoint is not None or (exp_dir / "checkpoints").is_dir() and any(
            (exp_dir / "checkpoints").glob("step-*.pt"))
        if init and not resuming:
            load_initial_weights(task.model, init, task.model_name)
        elif init:
            logger.info("--init ignored: resuming from a checkpoint")
        trainer.resume(checkpoint)
        if dist_info.is_main:
            save_config(config, saved)
            logger.info("training %s on %s (world size %d) from step %d to %d; exp dir %s",
                        task.model_name, dev, dist_info.world_size, trainer.step, config["train"]["max_steps"],
                        exp_dir)
        result = trainer.fit()
        return result if dist_info.is_main else {}
    finally:
        if handler is not None:
            logging.getLogger("spkid").removeHandler(handler)
            handler.close()
        cleanup(dist_info)


def _rank_info():
    import os

    from spkid.train.distributed import DistInfo

    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))
