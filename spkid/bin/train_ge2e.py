"""spkid train-ge2e: train a GE2E speaker encoder (PaddleSpeech examples/ge2e, Wan et al. 2018)."""
from __future__ import annotations

import click

from spkid.bin.train_options import TrainCommand, train_options


@click.command("train-ge2e", cls=TrainCommand)
@train_options
def main(**kwargs) -> None:
    """Train a GE2E d-vector encoder (3-layer LSTM, N speakers x M utterances per batch): `spkid train`
    with `task: ge2e` as the default.

    Data: a Kaldi data dir with feats.scp (+ vad.scp when features.vad is set), or only wav.scp,
    features then being computed on the fly from the audio (lhotse cuts). Resumes automatically
    from the newest checkpoint in --output; --checkpoint picks one; --init loads weights only.
    Multi-GPU/CPU data-parallel: --nprocs N, or torchrun --nproc_per_node N -m spkid train-ge2e ...

    \b
    Example:
      spkid train-ge2e --data data/train --output exp/ge2e --config conf/ge2e.yaml \\
          --opts train.max_steps 2000 data.speakers_per_batch 16 \\
          --valid-data data/valid --valid-trials data/valid/trials
    """
    from spkid.bin.train_options import run_from_cli

    run_from_cli(kwargs, default_task="ge2e", tasks=("ge2e",))
