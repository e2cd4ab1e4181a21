"""Checkpoint averaging (`spkid average-checkpoints`), as WeSpeaker's wespeaker/bin/average_model.py.

The weights of several checkpoints of one run are averaged tensor by tensor: floating-point tensors
(weights and batch-norm running statistics) are averaged, integer buffers (batch norm's
num_batches_tracked) are taken from the newest checkpoint. The result is a normal spkid checkpoint
(the newest one's model, front-end, extraction and step, without optimizer state) that
extract-embeddings, export and --init accept.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from spkid.errors import SpkidError

logger = logging.getLogger("spkid.train")


def select_checkpoints(exp_dir: str | Path, num: int | None = None, min_step: int | None = None,
                       max_step: int | None = None) -> list[Path]:
    """The `step-N.pt` of EXPDIR/checkpoints with min_step <= N <= max_step, the newest `num` of them
    (all of them without `num`), oldest first."""
    from spkid.train.checkpoint import _STEP_RE

    folder = Path(exp_dir) / "checkpoints"
    if not folder.is_dir():
        raise SpkidError(f"{exp_dir}: no checkpoints folder ({folder})")
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_RE.match(p.name)))
    chosen = [p for step, p in found if (min_step is None or step >= min_step)
              and (max_step is None or step <= max_step)]
    if num is not None:
        if num < 1:
            raise SpkidError(f"--num must be >= 1, got {num}")
        chosen = chosen[-num:]
    if not chosen:
        raise SpkidError(f"{folder}: no checkpoint in the step range [{min_step}, {max_step}]"
                         if found else f"{folder}: no checkpoint found")
    if num is not None and len(chosen) < num:
        logger.warning("only %d checkpoints to average (asked for %d)", len(chosen), num)
    return chosen


def average_state_dicts(state_dicts: list[dict[str, torch.Tensor]], origins: list[str]) -> dict[str, torch.Tensor]:
    """Floating-point tensors averaged (in float64, stored in their own dtype); others from the last."""
    first = state_dicts[0]
    for sd, origin in zip(state_dicts[1:], origins[1:]):
        if set(sd) != set(first) or any(sd[k].shape != first[k].shape for k in first):
            raise SpkidError(f"{origin}: its tensors do not match those of {origins[0]}")
    out = {}
    for key, last in state_dicts[-1].items():
        if torch.is_floating_point(last):
            total = sum(sd[key].double() for sd in state_dicts)
            out[key] = (total / len(state_dicts)).to(last.dtype)
        else:
            out[key] = last.clone()
    return out


def average_checkpoints(paths: list[Path], output: str | Path) -> Path:
    """Write the average of `paths` (oldest first; one model and front-end) to `output`."""
    from spkid.train.checkpoint import check_weights, load_checkpoint, save_checkpoint

    ckpts = [load_checkpoint(p) for p in paths]
    last = ckpts[-1]
    for ck in ckpts[:-1]:
        if ck["model"] != last["model"] or ck.get("features") != last.get("features"):
            raise SpkidError(f"{ck['path']}: model or features differ from {last['path']}; average checkpoints "
                             "of one run only")
    origins = [ck["path"] for ck in ckpts]
    state = check_weights(average_state_dicts([ck["state_dict"] for ck in ckpts], origins), output)
    extra = {k: v for k, v in last.items() if k not in (
        "format", "version", "model", "features", "state_dict", "step", "path", "optimizer", "criterion")}
    if all("criterion" in ck for ck in ckpts):
        extra["criterion"] = average_state_dicts([ck["criterion"] for ck in ckpts], origins)
    extra["averaged_steps"] = [int(ck["step"]) for ck in ckpts]
    path = save_checkpoint(output, model_name=last["model"]["name"], model_config=last["model"]["config"],
                           feature_config=last.get("features") or {}, state_dict=state, step=int(last["step"]),
                           extra=extra)
    logger.info("averaged %d checkpoints (steps %s) into %s", len(ckpts),
                ", ".join(str(s) for s in extra["averaged_steps"]), path)
    return path
