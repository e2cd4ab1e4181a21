"""Cosine triplet loss (Deep Speaker, Li et al. 2017; philipperemy/deep-speaker), margin 0.1, usually
from a classification-trained encoder (--init).

Batches are random triplets (`triplet.batch: random`) or hard ones chosen from a history of embedded
candidate batches (`hard`, spkid.data.hard_triplets). Crops are `data.crop_frames` long; utterances
shorter than `data.min_frames` (default: the crop) are left out, those between are tiled to the crop.
A batch whose embeddings are not finite or collapsed (mean pairwise cosine > triplet.collapse_cosine)
stops training with the step. Validation: the EER of --valid-trials.
"""
from __future__ import annotations

import logging

from spkid.errors import SpkidError
from spkid.tasks import build_encoder, common, open_training_data, with_steps
from spkid.train.trainer import Task

logger = logging.getLogger("spkid.train")

BATCHES = ("random", "hard")

DEFAULTS: dict = {
    "model": {"name": "rescnn", "args": {}},
    "features": {"type": "kaldi-fbank", "num_mel_bins": 64, "dither": 0.0, "sample_frequency": 16000.0,
                 "cmn": True, "vad": {}},
    "data": {"crop_frames": 160, "min_frames": None, "source": "auto", "num_workers": 2},
    "triplet": {"batch": "hard", "margin": 0.1, "collapse_cosine": 0.999,
                "random": {"triplets": 32},
                "hard": {"candidate_speakers": 640, "candidate_utterances": 2, "history_batches": 20,
                         "candidate_every": 10, "anchors": 16, "positives_per_anchor": 2,
                         "negatives_per_anchor": 2, "embed_batch_size": 256}},
    **common(),
}
RANGES = {"triplet.margin": ">= 0", "triplet.collapse_cosine": "[0, 1]", "triplet.random.triplets": ">= 1",
          "triplet.hard.candidate_speakers": ">= 2", "triplet.hard.candidate_utterances": ">= 2",
          "triplet.hard.history_batches": ">= 1", "triplet.hard.candidate_every": ">= 1",
          "triplet.hard.anchors": ">= 1", "triplet.hard.positives_per_anchor": ">= 1",
          "triplet.hard.negatives_per_anchor": ">= 1", "triplet.hard.embed_batch_size": ">= 1"}
VALID_DATA_ALONE = False


def pairs_to_triplets(batch: dict) -> dict:
    """T speakers x 2 utterances (speaker-major) -> [anchors; positives; negatives]: each speaker's first
    utterance anchors, its second is the positive, the next speaker's first is the negative."""
    import torch

    count = len(batch["speakers"]) // 2
    anchors = torch.arange(count) * 2
    order = torch.cat([anchors, anchors + 1, anchors.roll(-1)])
    return {**batch, "feats": batch["feats"][order], "speakers": batch["speakers"][order]}


def build_task(config: dict, data_dir: str, rank: int, world_size: int, valid_data: str | None = None,
               valid_trials: str | None = None) -> Task:
    import torch

    from spkid.data.augmentation import training_augmentation
    from spkid.losses.triplet import TripletCosineLoss, check_embeddings
    from spkid.models.windows import extraction_config

    feature_config, source, crop, min_frames = open_training_data(config, data_dir)
    name, model_config, model = build_encoder(config, source.dim)
    augmentation = training_augmentation(config, data_dir, rank, source)
    extraction = extraction_config(config["extraction"])
    seed, num_workers, source_name = int(config["train"]["seed"]), int(config["data"]["num_workers"]), str(data_dir)
    tcfg = config["triplet"]
    batch = tcfg["batch"]
    if batch not in BATCHES:
        raise SpkidError(f"triplet.batch must be one of {', '.join(BATCHES)}, not '{batch}'")
    criterion = TripletCosineLoss(float(tcfg["margin"]))
    collapse = float(tcfg["collapse_cosine"])
    streamed = getattr(source, "streamed", False)
    if streamed and batch == "hard":
        raise SpkidError("hard triplets choose from embedded candidates of every speaker (random access): "
                         "not with shards; use triplet.batch random, or a data dir")
    if streamed:
        triplets = int(tcfg["random"]["triplets"])

        def make_batches(start_step: int):  # shards: T speakers x 2 from the speaker buffer, as triplets
            loader = source.loader(("speakers", triplets, 2), crop, seed=seed, rank=rank, world_size=world_size,
                                   start_step=start_step, num_workers=num_workers, augmentation=augmentation)
            return with_steps(map(pairs_to_triplets, loader), start_step)
    elif batch == "hard":
        from spkid.data.hard_triplets import HardTripletBatches

        def make_hard(start_step: int, log_notes: bool = False):
            return HardTripletBatches(model, source, crop, tcfg["hard"], seed, rank, world_size, start_step,
                                      num_workers, source_name, log_notes, min_frames, augmentation)

        make_hard(0, log_notes=True)  # checks the speakers now
        make_batches = make_hard
    else:
        from spkid.data.loader import make_loader
        from spkid.data.triplets import RandomTripletSampler

        triplets = int(tcfg["random"]["triplets"])
        RandomTripletSampler(source.utt_speaker, source.lengths, triplets, min_frames, source_name=source_name)

        def make_batches(start_step: int):
            sampler = RandomTripletSampler(source.utt_speaker, source.lengths, triplets, min_frames, seed=seed,
                                           rank=rank, start_step=start_step, source_name=source_name)
            return with_steps(make_loader(source, sampler, crop, num_workers, augmentation=augmentation),
                              start_step)

    def compute_loss(joint: torch.nn.Module, batch: dict):
        embeds = joint.model(batch["feats"])
        mean_cos = check_embeddings(embeds, int(batch["step"]) + 1, collapse)
        loss = joint.criterion(embeds)
        metrics = {**joint.criterion.last, "mean_cos": mean_cos}
        for key in ("select_ms", "candidate_s"):
            if key in batch:
                metrics[key] = float(batch[key])
        return loss, metrics

    validate = None
    if valid_data and valid_trials:
        from spkid.tasks.validation import TrialValidator

        validate = TrialValidator(valid_data, valid_trials, feature_config, extraction)
    return Task(model=model, criterion=criterion, model_name=name, model_config=model_config,
                feature_config=feature_config, extraction=extraction, make_batches=make_batches,
                compute_loss=compute_loss, validate=validate, extra_state={"stage": "triplet"})
