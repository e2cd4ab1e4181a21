"""spkid train: one trainer for every model -- `task: classification | ge2e | triplet` in the config."""
from __future__ import annotations

import click

from spkid.bin.train_options import TrainCommand, train_options


@click.command("train", cls=TrainCommand)
@train_options
def main(**kwargs) -> None:
    """Train a speaker encoder: the config's `task:` says how.

    \b
      classification  encoder + classification head (`head: {name: softmax | ..., args: {...}}`); margin
                      heads take `head.margin_schedule: {start_step, end_step}` (linear ramp from 0)
      ge2e            N speakers x M utterances per batch, GE2E loss (section `loss`)
      triplet         cosine triplet loss, random or hard triplets (section `triplet`)

    The encoder is `model: {name: NAME, args: {...}}`, any registered model (spkid/models/: one file
    with @register_model). Config precedence: the task's built-in defaults < EXPDIR/config.yaml (when
    --output holds a checkpoint) < --config < --opts, so a config file holds only what it changes and
    `--opts train.max_steps N` extends a finished run. Resuming refuses a changed model or front-end;
    --fresh starts over. One run per --output at a time (EXPDIR/.lock). Old config shapes (train-ge2e's
    flat `model:` options, train-deepspeaker's `stage:` / `softmax:` / per-model sections) are translated
    with a logged note. Data: a Kaldi data dir with feats.scp (+ vad.scp) or audio only. Multi-GPU/CPU:
    --nprocs N, or torchrun --nproc_per_node N -m spkid train ...

    \b
    Example:
      spkid train --config conf/deepspeaker_softmax.yaml --data data/train --output exp/ds_softmax \\
          --opts model.name gru train.max_steps 2000 --valid-data data/valid
    """
    from spkid.bin.train_options import run_from_cli

    run_from_cli(kwargs)
