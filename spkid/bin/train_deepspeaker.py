"""spkid train-deepspeaker: Deep Speaker (Li et al. 2017) ResCNN/GRU encoders: softmax pre-training, triplet
loss with random or hard triplets, and a softmax layer on frozen embeddings."""
from __future__ import annotations

import click

from spkid.bin.train_options import TrainCommand, train_options


@click.command("train-deepspeaker", cls=TrainCommand)
@train_options
@click.option("--stage", type=click.Choice(["softmax", "triplet", "freeze"]), default=None,
              help="Training stage [default: the config's `stage`, softmax].")
@click.option("--batch", type=click.Choice(["random", "hard"]), default=None,
              help="Triplet selection for --stage triplet [default: the config's `triplet.batch`, hard].")
def main(stage: str | None, batch: str | None, **kwargs) -> None:
    """Train a Deep Speaker encoder ("rescnn", "rescnn_small" or "gru": --opts model.name gru).

    \b
    Stages (philipperemy/deep-speaker's train.py):
      softmax  speaker classification (pre-training); logs train accuracy, and validation accuracy
               with --valid-data DIR alone (held-out utterances of the training speakers)
      triplet  cosine triplet loss, margin 0.1, from the softmax encoder (--init EXP); --batch hard
               picks, for each anchor, the most similar negatives and least similar positives in a
               history of embedded candidate batches (all sizes under triplet.hard); --batch random
      freeze   a new softmax layer on the frozen encoder (--init EXP): accuracy of the embeddings

    Features (the config's `features`): 64-dim Kaldi fbank, VAD-trimmed, per-utterance mean
    normalisation, 160-frame crops. Data: feats.scp + vad.scp (steps/make_fbank.sh, compute-vad) or
    audio only (features on the fly). --valid-data with --valid-trials adds the trial-list EER.
    Resumes from the newest checkpoint in --output; extraction: spkid extract-embeddings --model EXP.

    \b
    Example:
      spkid train-deepspeaker --stage softmax --data data/train --output exp/ds_softmax \\
          --config conf/deepspeaker_softmax.yaml --valid-data data/valid_spk
      spkid train-deepspeaker --stage triplet --batch hard --data data/train --output exp/ds_triplet \\
          --config conf/deepspeaker_triplet.yaml --init exp/ds_softmax \\
          --valid-data data/valid --valid-trials data/valid/trials
    """
    from spkid.bin.train_options import run_from_cli
    from spkid.tasks.deepspeaker import DEFAULTS, build_task

    extra = []
    if stage is not None:
        extra += ["stage", stage]
    if batch is not None:
        extra += ["triplet.batch", batch]
    if extra:
        kwargs["opts"] = tuple(kwargs.get("opts") or ()) + tuple(zip(extra[::2], extra[1::2]))
    _check_stage(kwargs)
    run_from_cli(build_task, DEFAULTS, kwargs, require_trials=False)


def _check_stage(kwargs: dict) -> None:
    """Clear errors before any work: resuming another stage's exp dir, freeze without weights, and
    --valid-data alone for the triplet stage (which has no classifier to measure)."""
    from pathlib import Path

    import yaml

    from spkid.tasks.deepspeaker import DEFAULTS
    from spkid.train.checkpoint import find_latest_checkpoint
    from spkid.train.config import load_config

    output = Path(kwargs["output"])
    opts = tuple(x for pair in (kwargs.get("opts") or ()) for x in pair)
    config_file = kwargs["config_file"]
    saved = output / "config.yaml"
    if config_file is None and not opts and saved.exists():
        config_file = str(saved)
    effective = load_config(DEFAULTS, config_file, opts)["stage"]
    latest = find_latest_checkpoint(output)
    if latest is not None and kwargs["checkpoint"] is None and saved.exists():
        done = (yaml.safe_load(saved.read_text()) or {}).get("stage")
        if done is not None and done != effective:
            raise click.UsageError(f"{output} holds a '{done}' stage run; this is stage '{effective}' "
                                   "(use another --output, and --init to start from it)")
    if effective == "freeze" and not kwargs["init"] and latest is None and kwargs["checkpoint"] is None:
        raise click.UsageError("--stage freeze trains on a frozen encoder: give --init EXP (a trained model)")
    if effective == "triplet" and kwargs["valid_data"] and not kwargs["valid_trials"]:
        raise click.UsageError("--stage triplet validates on --valid-trials (EER); --valid-data alone gives "
                               "accuracy in the softmax and freeze stages")
