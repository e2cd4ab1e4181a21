"""Speaker classification: any registered encoder + any registered head (spkid.losses: `softmax`, margin heads).

Batches are random `data.crop_frames` crops of the training utterances labelled by speaker (utterances
shorter than `data.min_frames`, default the crop, are left out; those between are tiled to the crop).
The head gets the encoder's output; an encoder with `embed(frames, dropout, normalize)` (Deep Speaker's)
gives its affine output before L2 normalisation, with `classification.dropout` before that affine layer
(philipperemy/deep-speaker's `include_softmax` model); other encoders get the dropout on their output.

- Deep Speaker softmax pre-training: `model: {name: rescnn}`, `head: {name: softmax}`, dropout 0.5
  (conf/deepspeaker_softmax.yaml; `spkid train-deepspeaker --stage softmax`).
- `classification.freeze_encoder: true`: a new head on the frozen encoder (--init EXP): how
  speaker-discriminative its embeddings are, as accuracy (Deep Speaker's freeze stage).
- `classification.freeze_encoder_steps: N`: fine-tuning (--init EXP, e.g. an imported CAM++, with a new
  head): the encoder is frozen (eval mode, no gradients, batch-norm statistics kept) for the first N steps
  while the new head learns, then trained with it. Single-process only (DDP wants every parameter's
  gradient in every step).
- `classification.init_head: true` with --init EXP: the head's weights come from EXP too (same
  speakers): large-margin fine-tuning (longer crops, a larger margin, a low lr) continues the classifier.
- Margin heads (a `set_margin(m)` method): the margin is ramped linearly from 0 at
  `head.margin_schedule.start_step` to the head's margin at `end_step` (WeSpeaker's schedule; the
  default 0/0 uses the full margin from the start), set every step and logged as `margin`.

Logs the batch accuracy; with --valid-data (held-out utterances of the training speakers) the
validation accuracy (heads with a `logits(embeddings)` method), with --valid-trials also the EER.
"""
from __future__ import annotations

import logging

import torch

from spkid.errors import SpkidError
from spkid.losses.margin import margin_at
from spkid.models import encoder_output
from spkid.tasks import build_encoder, common, open_training_data, stage_label, with_steps
from spkid.train.trainer import Task

logger = logging.getLogger("spkid.train")

DEFAULTS: dict = {
    "model": {"name": "rescnn", "args": {}},
    "head": {"name": "softmax", "args": {}, "margin_schedule": {"start_step": 0, "end_step": 0}},
    "features": {"type": "kaldi-fbank", "num_mel_bins": 64, "dither": 0.0, "sample_frequency": 16000.0,
                 "cmn": True, "vad": {}},
    "data": {"crop_frames": 160, "min_frames": None, "source": "auto", "num_workers": 2},
    "classification": {"batch_size": 64, "dropout": 0.0, "balance_speakers": False, "freeze_encoder": False,
                       "freeze_encoder_steps": 0, "init_head": False},
    **common(),
}
RANGES = {"classification.batch_size": ">= 1", "classification.freeze_encoder_steps": ">= 0",
          "classification.dropout": "[0, 1)",
          "head.margin_schedule.start_step": ">= 0", "head.margin_schedule.end_step": ">= 0"}
VALID_DATA_ALONE = True


def speaker_classes(speakers: list[str], augmentation) -> list[str]:
    """The head's classes: the speakers, then with `augment.speed_as_new_speakers` each speaker again per
    speed (`<speaker>-sp<factor>`, WeSpeaker's labels), in the label blocks CropDataset uses."""
    classes = list(speakers)
    if augmentation is not None and augmentation.label_blocks > 1:
        for factor in augmentation.config.speeds:
            classes += [f"{s}-sp{factor:g}" for s in speakers]
    return classes


def build_head(config: dict, embed_dim: int, num_classes: int) -> torch.nn.Module:
    from spkid.losses import build_head as build

    hcfg = config["head"]
    try:
        return build(hcfg["name"], embed_dim, num_classes, **hcfg["args"])
    except (TypeError, ValueError) as err:
        raise SpkidError(f"head '{hcfg['name']}' with args {hcfg['args']}: {err}") from None


def build_task(config: dict, data_dir: str, rank: int, world_size: int, valid_data: str | None = None,
               valid_trials: str | None = None) -> Task:
    from spkid.data.augmentation import training_augmentation
    from spkid.data.loader import make_loader
    from spkid.data.samplers import RandomCropSampler
    from spkid.models.windows import extraction_config

    feature_config, source, crop, min_frames = open_training_data(config, data_dir)
    name, model_config, model = build_encoder(config, source.dim)
    extraction = extraction_config(config["extraction"])
    ccfg, schedule = config["classification"], config["head"]["margin_schedule"]
    augmentation = training_augmentation(config, data_dir, rank, source, new_speakers_ok=True)
    classes = speaker_classes(source.speakers, augmentation)
    head = build_head(config, int(model_config.get("embed_dim") or model.embed_dim), len(classes))
    seed, batch_size, dropout = int(config["train"]["seed"]), int(ccfg["batch_size"]), float(ccfg["dropout"])
    frozen, frozen_steps = bool(ccfg["freeze_encoder"]), int(ccfg.get("freeze_encoder_steps") or 0)
    if frozen_steps and world_size > 1:
        raise SpkidError("classification.freeze_encoder_steps needs a single process (not --nprocs / torchrun)")
    margin = float(getattr(head, "margin", 0.0)) if callable(getattr(head, "set_margin", None)) else None
    start, end = int(schedule["start_step"]), int(schedule["end_step"])
    if margin is not None and start > end:
        raise SpkidError(f"head.margin_schedule: start_step {start} is after end_step {end}")
    streamed = getattr(source, "streamed", False)
    if streamed and ccfg["balance_speakers"]:
        raise SpkidError("classification.balance_speakers needs random access to the data: not with shards")
    if not streamed:
        RandomCropSampler(source.utt_speaker, source.lengths, batch_size, min_frames, source_name=str(data_dir))
    if frozen:
        model.requires_grad_(False)
        logger.info("freeze: the encoder is frozen; training a %d-speaker %s head on its output",
                    len(source.speakers), config["head"]["name"])
    elif frozen_steps:
        logger.info("the encoder is frozen for the first %d steps (a new %d-speaker %s head learns first)",
                    frozen_steps, len(source.speakers), config["head"]["name"])

    def make_batches(start_step: int):
        if streamed:  # shards: the next batch_size utterances of this rank's stream
            return with_steps(source.loader(("fixed", batch_size), crop, seed=seed, rank=rank, world_size=world_size,
                                            start_step=start_step, num_workers=int(config["data"]["num_workers"]),
                                            augmentation=augmentation),
                              start_step)
        sampler = RandomCropSampler(source.utt_speaker, source.lengths, batch_size, min_frames, seed=seed,
                                    rank=rank, start_step=start_step, source_name=str(data_dir),
                                    balance_speakers=bool(ccfg["balance_speakers"]))
        return with_steps(make_loader(source, sampler, crop, int(config["data"]["num_workers"]),
                                      augmentation=augmentation), start_step)

    def compute_loss(joint: torch.nn.Module, batch: dict):
        metrics = {}
        if margin is not None:
            metrics["margin"] = margin_at(int(batch["step"]), margin, start, end)
            joint.criterion.set_margin(metrics["margin"])
        if frozen or int(batch["step"]) < frozen_steps:
            joint.model.eval()  # batch-norm statistics stay as trained
            with torch.no_grad():
                embeds = encoder_output(joint.model, batch["feats"])
        else:
            joint.model.train(joint.criterion.training)
            embeds = encoder_output(joint.model, batch["feats"], dropout)
        loss, logits = joint.criterion(embeds, batch["speakers"])
        with torch.no_grad():
            metrics["accuracy"] = float((logits.argmax(dim=1) == batch["speakers"]).float().mean())
        return loss, metrics

    validators = []
    if valid_data and callable(getattr(head, "logits", None)):
        from spkid.tasks.classification_valid import ClassifierValidator

        validators.append(ClassifierValidator(valid_data, feature_config, extraction, source.speakers, head))
    elif valid_data:
        logger.info("validation accuracy: head '%s' has no logits(embeddings) method; skipped",
                    config["head"]["name"])
    if valid_data and valid_trials:
        from spkid.tasks.validation import TrialValidator

        validators.append(TrialValidator(valid_data, valid_trials, feature_config, extraction))

    def validate(model, step: int) -> dict[str, float]:
        out: dict[str, float] = {}
        for v in validators:
            out.update(v(model, step))
        return out

    return Task(model=model, criterion=head, model_name=name, model_config=model_config,
                feature_config=feature_config, extraction=extraction, make_batches=make_batches,
                compute_loss=compute_loss, validate=validate if validators else None,
                extra_state={"stage": stage_label(config), "speakers": classes})
