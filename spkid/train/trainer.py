"""The one training loop. It knows nothing of GE2E or triplets: a task brings the model, the loss
module, the batches and (optionally) a validation; the trainer does devices, DDP, AMP, clipping,
logging (text + TensorBoard), checkpoints (atomic, auto-resume) and loader-stall accounting.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from spkid.devices import cpu_has_bfloat16
from spkid.errors import SpkidError
from spkid.train.checkpoint import checkpoint_name, find_latest_checkpoint, load_checkpoint, save_checkpoint
from spkid.train.distributed import DistInfo, barrier

logger = logging.getLogger("spkid.train")


@dataclass
class Task:
    """What a trainer needs from a recipe (GE2E, Deep Speaker softmax/triplet, ...)."""

    model: torch.nn.Module
    criterion: torch.nn.Module  # may hold parameters (GE2E's w, b); saved with the checkpoint
    model_name: str
    model_config: dict
    feature_config: dict
    extraction: dict
    make_batches: Callable[[int], Any]  # start step -> iterable of batches
    compute_loss: Callable[[torch.nn.Module, dict], tuple[torch.Tensor, dict[str, float]]]
    validate: Callable[[torch.nn.Module, int], dict[str, float]] | None = None
    extra_state: dict = field(default_factory=dict)  # stored in checkpoints (e.g. training stage)


class _Joint(torch.nn.Module):
    """Model + criterion as one module, so DDP all-reduces the gradients of both."""

    def __init__(self, task: Task):
        super().__init__()
        self.model, self.criterion = task.model, task.criterion
        self._loss = task.compute_loss

    def forward(self, batch: dict):
        return self._loss(self, batch)


def build_optimizer(params, cfg: dict) -> torch.optim.Optimizer:
    name = cfg.get("name", "adam").lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=cfg["lr"], weight_decay=cfg.get("weight_decay", 0.0))
    if name == "sgd":
        return torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg.get("momentum", 0.9),
                               weight_decay=cfg.get("weight_decay", 0.0))
    raise SpkidError(f"optim.name must be adam or sgd, not '{name}'")


DECAYS = ("cosine", "exponential")


def scheduled_lr(cfg: dict, step: int, max_steps: int) -> float:
    """The learning rate of step `step` (0-based), a pure function of the step (resuming continues it).

    optim.lr, or with optim.final_lr set, a decay from lr to final_lr over train.max_steps: `cosine`
    (optim.decay's default) or `exponential` (lr * (final_lr / lr) ** progress, WeSpeaker's
    ExponentialDecrease). With optim.warmup_steps W > 0 the rate is also scaled by min(1, (step + 1) / W):
    a linear warm-up over the first W steps (WeSpeaker multiplies its decay by the warm-up factor too).
    """
    lr, final = float(cfg["lr"]), cfg.get("final_lr")
    warmup = int(cfg.get("warmup_steps") or 0)
    scale = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    if final is None or max_steps <= 1:
        return lr * scale
    progress, final = min(1.0, step / (max_steps - 1)), float(final)
    decay = cfg.get("decay") or "cosine"
    if decay not in DECAYS:
        raise SpkidError(f"optim.decay must be one of {', '.join(DECAYS)}, not '{decay}'")
    if decay == "exponential":
        if final <= 0:
            raise SpkidError("optim.decay exponential needs optim.final_lr > 0")
        return scale * lr * (final / lr) ** progress
    return scale * (final + 0.5 * (lr - final) * (1 + math.cos(math.pi * progress)))


def load_initial_weights(model: torch.nn.Module, path: str, model_name: str,
                         head: tuple[torch.nn.Module, list[str]] | None = None) -> None:
    """--init: weights only (fine-tuning); shapes must match. With `head` (the head and this run's
    speakers) the checkpoint's head too, which must have been trained on the same speakers (large-margin
    fine-tuning continues the classifier)."""
    ckpt = load_checkpoint(path, expect_model=model_name)
    try:
        model.load_state_dict(ckpt["state_dict"])
        if head is not None:
            if ckpt.get("speakers") != list(head[1]) or "criterion" not in ckpt:
                raise SpkidError(f"{ckpt['path']}: classification.init_head needs a checkpoint of a classifier "
                                 "trained on the same speakers (same data dir)")
            head[0].load_state_dict(ckpt["criterion"])
    except RuntimeError as err:
        raise SpkidError(f"{ckpt['path']}: weights do not fit this model ({str(err).splitlines()[0]})") from None
    logger.info("initialised weights%s from %s", " and head" if head is not None else "", ckpt["path"])


class Trainer:
    def __init__(self, task: Task, config: dict, exp_dir: str | Path, device: torch.device, dist_info: DistInfo):
        self.task, self.cfg = task, config
        self.exp_dir = Path(exp_dir)
        self.device, self.dist = device, dist_info
        self.joint = _Joint(task).to(device)
        self.optimizer = build_optimizer(self.joint.parameters(), config["optim"])
        self.step = 0
        self.writer = None

    # -- checkpoints ---------------------------------------------------------------------------
    def save(self) -> Path:
        path = self.exp_dir / "checkpoints" / checkpoint_name(self.step)
        save_checkpoint(path, model_name=self.task.model_name, model_config=self.task.model_config,
                        feature_config=self.task.feature_config, state_dict=self.task.model.state_dict(),
                        step=self.step, extra={
                            "criterion": {k: v.detach().cpu() for k, v in self.task.criterion.state_dict().items()},
                            "optimizer": self.optimizer.state_dict(), "config": self.cfg,
                            "extraction": self.task.extraction, **self.task.extra_state})
        keep = int(self.cfg["train"].get("keep_checkpoints", 0))
        if keep > 0:
            old = sorted((self.exp_dir / "checkpoints").glob("step-*.pt"))[:-keep]
            for p in old:
                p.unlink(missing_ok=True)
        logger.info("saved %s", path)
        return path

    def resume(self, checkpoint: str | None) -> None:
        """Resume from --checkpoint, else the newest checkpoint in the exp dir (if any)."""
        path = checkpoint or find_latest_checkpoint(self.exp_dir)
        if path is None:
            return
        from spkid.models import model_config

        ckpt = load_checkpoint(path, expect_model=self.task.model_name)
        fresh = "; use the same config, another --output, or --fresh to start over"
        saved = model_config(self.task.model_name, ckpt["model"]["config"])
        if saved != self.task.model_config:
            raise SpkidError(f"{ckpt['path']}: model config differs from this run's "
                             f"({_differences(saved, self.task.model_config)}){fresh}")
        if ckpt.get("features") != self.task.feature_config:
            raise SpkidError(f"{ckpt['path']}: features differ from this run's "
                             f"({_differences(ckpt.get('features') or {}, self.task.feature_config)}){fresh}")
        self.task.model.load_state_dict(ckpt["state_dict"])
        if "criterion" in ckpt:
            try:
                self.task.criterion.load_state_dict(ckpt["criterion"])
            except RuntimeError as err:  # e.g. other speakers, or augment.speed_as_new_speakers changed
                raise SpkidError(f"{ckpt['path']}: the loss/head does not fit this run's "
                                 f"({str(err).splitlines()[-1].strip()}){fresh}") from None
        if "optimizer" in ckpt:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        self.step = int(ckpt["step"])
        logger.info("resumed from %s at step %d", ckpt["path"], self.step)

    # -- the loop --------------------------------------------------------------------------------
    def fit(self) -> dict[str, float]:
        tcfg = self.cfg["train"]
        max_steps = int(tcfg["max_steps"])
        clip = float(self.cfg["optim"].get("grad_clip", 0.0))
        amp = bool(tcfg.get("amp", False))  # bfloat16 autocast: GPUs, and CPUs with AVX512-BF16 or AMX
        if amp and self.dist.is_main:
            logger.info("train.amp: the network runs under bfloat16 autocast on %s (losses in float32)",
                        self.device.type)
            if self.device.type == "cpu" and cpu_has_bfloat16() is False:
                logger.warning("train.amp on a CPU without AVX512-BF16/AMX: bfloat16 is emulated, slower "
                               "than float32 (set train.amp false)")
        module: torch.nn.Module = self.joint
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            module = torch.nn.parallel.DistributedDataParallel(self.joint, device_ids=ids)
        if self.dist.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.exp_dir / "tensorboard"))
        batches = _timed(self.task.make_batches(self.step))
        last: dict[str, float] = {}
        window_wait = window_time = 0.0
        window_start = time.perf_counter()
        progress = _progress(self.dist.is_main, self.step, max_steps)
        module.train()
        while self.step < max_steps:
            batch = next(batches)
            wait = batches.last_wait
            batch = {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp):
                loss, metrics = module(batch)
            if not torch.isfinite(loss):
                raise SpkidError(f"loss is {loss.item()} at step {self.step + 1}; stopping (lower optim.lr?)")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            before_step = getattr(self.task.criterion, "before_optimizer_step", None)
            if before_step is not None:
                before_step()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.joint.parameters(), clip) if clip > 0 else None
            lr = scheduled_lr(self.cfg["optim"], self.step, max_steps)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.optimizer.step()
            self.step += 1
            progress.update(1)
            window_wait += wait
            last = {"loss": float(loss.detach()), **metrics, "lr": lr}
            if grad_norm is not None:
                last["grad_norm"] = float(grad_norm)
            if wait > float(tcfg.get("stall_warn_seconds", 2.0)):
                logger.warning("step %d waited %.2fs for data (loader stall)", self.step, wait)
            if self.step % int(tcfg["log_every"]) == 0 or self.step == max_steps:
                window_time = time.perf_counter() - window_start
                last["data_wait_share"] = window_wait / max(window_time, 1e-9)
                last["steps_per_s"] = int(tcfg["log_every"]) / max(window_time, 1e-9)
                self._log(last)
                window_wait, window_start = 0.0, time.perf_counter()
            valid_every = int(tcfg.get("valid_every", 0))
            if self.task.validate is not None and valid_every > 0 and (
                    self.step % valid_every == 0 or self.step == max_steps):
                if self.dist.is_main:
                    module.eval()
                    scores = self.task.validate(self.task.model, self.step)
                    module.train()
                    self._log({f"valid_{k}": v for k, v in scores.items()})
                    last.update({f"valid_{k}": v for k, v in scores.items()})
                barrier(self.dist)
            if self.step % int(tcfg["checkpoint_every"]) == 0 or self.step == max_steps:
                if self.dist.is_main:
                    self.save()
                barrier(self.dist)
        progress.close()
        if self.writer is not None:
            self.writer.close()
        return last

    def _log(self, values: dict[str, float]) -> None:
        if not self.dist.is_main:
            return
        text = " ".join(f"{k}={v:.4g}" if isinstance(v, float) and math.isfinite(v) else f"{k}={v}"
                        for k, v in values.items())
        logger.info("step %d: %s", self.step, text)
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(k, v, self.step)


def _differences(old: dict, new: dict) -> str:
    """`key: checkpoint's -> this run's` for every key that differs."""
    keys = sorted(set(old) | set(new), key=str)
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k))


def _timed(iterable):
    from spkid.data.loader import TimedIterator

    return TimedIterator(iterable)


def _progress(enabled: bool, start: int, total: int):
    from tqdm import tqdm

    return tqdm(total=total, initial=start, desc="train", unit="step", disable=None if enabled else True,
                leave=False)
