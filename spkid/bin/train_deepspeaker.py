"""spkid train-deepspeaker: Deep Speaker (Li et al. 2017) ResCNN/GRU encoders: softmax pre-training, triplet
loss with random or hard triplets, and a softmax layer on frozen embeddings."""
from __future__ import annotations

import click

from spkid.bin.train_options import TrainCommand, train_options


@click.command("train-deepspeaker", cls=TrainCommand)
@train_options
@click.option("--stage", type=click.Choice(["softmax", "triplet", "freeze"]), default=None,
              help="Training stage [default: the config's (`task:`, classification.freeze_encoder), softmax].")
@click.option("--batch", type=click.Choice(["random", "hard"]), default=None,
              help="Triplet selection for --stage triplet [default: the config's `triplet.batch`, hard].")
def main(stage: str | None, batch: str | None, **kwargs) -> None:
    """Train a Deep Speaker encoder ("rescnn", "rescnn_small" or "gru": --opts model.name gru): `spkid train`
    with the classification task (stages softmax, freeze) or the triplet task.

    \b
    Stages (philipperemy/deep-speaker's train.py):
      softmax  speaker classification (pre-training; `task: classification`, `head: {name: softmax}`,
               dropout 0.5); logs train accuracy, and validation accuracy with --valid-data DIR alone
               (held-out utterances of the training speakers)
      triplet  cosine triplet loss, margin 0.1, from the softmax encoder (--init EXP; `task: triplet`);
               --batch hard picks, for each anchor, the most similar negatives and least similar positives
               in a history of embedded candidate batches (all sizes under triplet.hard); --batch random
      freeze   a new softmax layer on the frozen encoder (--init EXP; `classification.freeze_encoder:
               true`): accuracy of the embeddings

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

    extra: list[tuple[str, str]] = []
    if stage is not None:
        extra.append(("task", "triplet" if stage == "triplet" else "classification"))
        if stage != "triplet":
            extra.append(("classification.freeze_encoder", "true" if stage == "freeze" else "false"))
    if batch is not None:
        extra.append(("triplet.batch", batch))
    kwargs["opts"] = tuple(kwargs.get("opts") or ()) + tuple(extra)
    run_from_cli(kwargs, default_task="classification", tasks=("classification", "triplet"),
                 command_defaults={"classification": {"classification": {"dropout": 0.5}}}, check=_check_model)


MODELS = ("gru", "rescnn", "rescnn_small")


def _check_model(config: dict) -> None:
    name = config["model"]["name"]
    if name not in MODELS:
        raise click.UsageError(f"model.name '{name}' is not a Deep Speaker model (known: {', '.join(MODELS)}; "
                               "other encoders: spkid train)")
