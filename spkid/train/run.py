"""What `spkid train` (and its aliases) does around the Trainer: exp dir lock, logging, seeds, devices,
DDP, --init / --checkpoint / auto-resume / --fresh."""
from __future__ import annotations

import logging
import random
import shutil
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from spkid.errors import SpkidError
from spkid.train.checkpoint import find_latest_checkpoint
from spkid.train.config import save_config
from spkid.train.distributed import barrier, cleanup, init_distributed, pick_device, relaunch_with_torchrun
from spkid.train.lock import exp_lock
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


def run_training(build_task: Callable[..., Task], config: dict, *, data_dir: str, output: str,
                 checkpoint: str | None, init: str | None, device: str, nprocs: int, argv: list[str],
                 fresh: bool = False, **task_kwargs) -> dict[str, float]:
    """Train (or resume) into `output` with a resolved config (spkid.train.config.resolve_config);
    returns the last logged metrics (rank 0). The exp dir is locked for the run (spkid.train.lock);
    `fresh` deletes its checkpoints first instead of resuming from them."""
    import os

    exp_dir = Path(output)
    if nprocs > 1 and "WORLD_SIZE" not in os.environ:
        with exp_lock(exp_dir):
            if fresh:
                _clear_checkpoints(exp_dir)
            status = relaunch_with_torchrun(nprocs, strip_nprocs(argv))
        if status != 0:
            raise SpkidError(f"distributed training failed (exit status {status}); see {output}/train.log")
        return {}
    dev = pick_device(device, _rank_info())
    dist_info = init_distributed(dev)
    try:
        with exp_lock(exp_dir) if dist_info.is_main else nullcontext():
            if fresh and dist_info.is_main:
                _clear_checkpoints(exp_dir)
            barrier(dist_info)
            return _train(build_task, config, exp_dir, dev, dist_info, data_dir, checkpoint, init, task_kwargs)
    finally:
        cleanup(dist_info)


def _train(build_task, config: dict, exp_dir: Path, dev, dist_info, data_dir: str, checkpoint: str | None,
           init: str | None, task_kwargs: dict) -> dict[str, float]:
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
        resuming = checkpoint is not None or find_latest_checkpoint(exp_dir) is not None
        if init and not resuming:
            head = (task.criterion, task.extra_state.get("speakers") or []) if config.get(
                "classification", {}).get("init_head") else None
            load_initial_weights(task.model, init, task.model_name, head)
        elif init:
            logger.info("--init ignored: resuming from a checkpoint")
        trainer.resume(checkpoint)
        if dist_info.is_main:
            from spkid.models import count_parameters

            save_config(config, exp_dir / "config.yaml")
            logger.info("training %s (%s; %s encoder parameters, %s in the loss/head) on %s (world size %d) "
                        "from step %d to %d; exp dir %s", task.model_name, config["task"],
                        f"{count_parameters(task.model):,}", f"{count_parameters(task.criterion):,}", dev,
                        dist_info.world_size, trainer.step, config["train"]["max_steps"], exp_dir)
        result = trainer.fit()
        return result if dist_info.is_main else {}
    finally:
        if handler is not None:
            logging.getLogger("spkid").removeHandler(handler)
            handler.close()


def _clear_checkpoints(exp_dir: Path) -> None:
    folder = exp_dir / "checkpoints"
    if folder.is_dir():
        shutil.rmtree(folder)
        logger.info("--fresh: deleted %s; training starts from step 0", folder)


def _rank_info():
    import os

    from spkid.train.distributed import DistInfo

    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))
