"""Deep Speaker (Li et al. 2017; philipperemy/deep-speaker): ResCNN/GRU encoders trained in stages.

Training crops are `data.crop_frames` long; utterances shorter than `data.min_frames` (default: the crop)
are left out, those between the two are tiled to the crop (WeSpeaker's repeat padding; extract them
with `extraction.pad: repeat`).

- `softmax`: speaker-classification pre-training. Random 160-frame crops of the training utterances;
  a linear softmax layer (in the loss module: spkid.losses.softmax) on the encoder's affine output,
  with dropout before the affine layer. Logs the batch accuracy; with --valid-data (held-out utterances
  of the training speakers) the validation accuracy.
- `triplet`: cosine triplet loss, margin 0.1, usually from the softmax encoder (--init). Batches are
  random triplets (`triplet.batch: random`) or hard ones chosen from a history of embedded candidate
  batches (`hard`, spkid.data.hard_triplets). A batch whose embeddings are not finite or collapsed
  (mean pairwise cosine > triplet.collapse_cosine) stops training with the step.
- `freeze`: a new softmax layer trained on the frozen encoder (the seed's --freeze_embedding_weights):
  how speaker-discriminative the embeddings are, as accuracy.

Models: "rescnn", "rescnn_small", "gru"; each model's constructor options are under model.<name>.
"""
from __future__ import annotations

import logging

from spkid.errors import SpkidError
from spkid.train.trainer import Task

logger = logging.getLogger("spkid.train")

STAGES = ("softmax", "triplet", "freeze")
BATCHES = ("random", "hard")

DEFAULTS: dict = {
    "stage": "softmax",
    "model": {"name": "rescnn",
              "rescnn": {"channels": [64, 128, 256, 512], "blocks_per_stage": 3, "embedding_dim": 512},
              "rescnn_small": {"channels": [32, 64, 128, 256], "blocks_per_stage": 3, "embedding_dim": 512},
              "gru": {"conv_channels": 64, "hidden_size": 1024, "num_layers": 3, "embedding_dim": 512}},
    "features": {"type": "kaldi-fbank", "num_mel_bins": 64, "dither": 0.0, "sample_frequency": 16000.0,
                 "cmn": True, "vad": {}},
    "data": {"crop_frames": 160, "min_frames": None, "source": "auto", "num_workers": 2},
    "softmax": {"batch_size": 64, "dropout": 0.5, "balance_speakers": False},
    "triplet": {"batch": "hard", "margin": 0.1, "collapse_cosine": 0.999,
                "random": {"triplets": 32},
                "hard": {"candidate_speakers": 640, "candidate_utterances": 2, "history_batches": 20,
                         "candidate_every": 10, "anchors": 16, "positives_per_anchor": 2,
                         "negatives_per_anchor": 2, "embed_batch_size": 256}},
    "optim": {"name": "adam", "final_lr": None, "lr": 1e-3, "weight_decay": 0.0, "momentum": 0.9, "grad_clip": 0.0},
    "train": {"max_steps": 20000, "log_every": 50, "checkpoint_every": 1000, "keep_checkpoints": 5,
              "valid_every": 1000, "seed": 1234, "amp": False, "stall_warn_seconds": 5.0},
    "extraction": {"scheme": "overlap", "window_frames": 160, "overlap": 0.5, "min_coverage": 0.75},
}


def model_config_of(config: dict, input_dim: int) -> tuple[str, dict]:
    """(model name, constructor kwargs) from the config's model section."""
    name = config["model"]["name"]
    options = config["model"].get(name)
    if not isinstance(options, dict):
        known = sorted(k for k, v in config["model"].items() if isinstance(v, dict))
        raise SpkidError(f"model.name '{name}' is not a Deep Speaker model (known: {', '.join(known)})")
    return name, {**options, "input_dim": int(input_dim)}


def _with_steps(loader, start_step: int):
    for step, batch in enumerate(loader, start_step):
        batch["step"] = step
        yield batch


def build_task(config: dict, data_dir: str, rank: int, world_size: int, valid_data: str | None = None,
               valid_trials: str | None = None) -> Task:
    from spkid.data.sources import open_source
    from spkid.features.frontend import build_frontend
    from spkid.models import build_model
    from spkid.models.windows import extraction_config

    stage = config["stage"]
    if stage not in STAGES:
        raise SpkidError(f"stage must be one of {', '.join(STAGES)}, not '{stage}'")
    dcfg = config["data"]
    crop = int(dcfg["crop_frames"])
    min_frames = int(dcfg.get("min_frames") or crop)
    if not 1 <= min_frames <= crop:
        raise SpkidError(f"data.min_frames must be in [1, data.crop_frames={crop}], got {min_frames}")
    feature_config = build_frontend(config["features"]).to_config()
    source = open_source(data_dir, feature_config, dcfg["source"])
    name, model_config = model_config_of(config, source.dim)
    try:
        model = build_model(name, model_config)
    except TypeError as err:
        raise SpkidError(f"model.{name}: {err}") from None
    extraction = extraction_config(config["extraction"])
    seed = int(config["train"]["seed"])
    num_workers = int(dcfg["num_workers"])
    extra = {"stage": stage}
    if stage == "triplet":
        make_batches, compute_loss, criterion = _triplet(config, source, model, crop, min_frames, seed, rank,
                                                         world_size, num_workers, str(data_dir))
    else:
        make_batches, compute_loss, criterion = _softmax(config, source, model, crop, min_frames, seed, rank,
                                                         num_workers, str(data_dir), frozen=stage == "freeze")
        extra["speakers"] = list(source.speakers)
    validators = []
    if valid_data and stage != "triplet":
        from spkid.tasks.deepspeaker_valid import ClassifierValidator

        validators.append(ClassifierValidator(valid_data, feature_config, extraction, source.speakers, criterion))
    if valid_data and valid_trials:
        from spkid.tasks.validation import TrialValidator

        validators.append(TrialValidator(valid_data, valid_trials, feature_config, extraction))

    def validate(model, step: int) -> dict[str, float]:
        out: dict[str, float] = {}
        for v in validators:
            out.update(v(model, step))
        return out

    return Task(model=model, criterion=criterion, model_name=name, model_config=model_config,
                feature_config=feature_config, extraction=extraction, make_batches=make_batches,
                compute_loss=compute_loss, validate=validate if validators else None, extra_state=extra)


def _softmax(config, source, model, crop, min_frames, seed, rank, num_workers, name, frozen):
    import torch

    from spkid.data.loader import make_loader
    from spkid.data.triplets import RandomCropSampler
    from spkid.losses.softmax import SoftmaxHead

    scfg = config["softmax"]
    dropout = float(scfg["dropout"])
    criterion = SoftmaxHead(model.embedding_dim, len(source.speakers))
    RandomCropSampler(source.utt_speaker, source.lengths, int(scfg["batch_size"]), min_frames, source_name=name)
    if frozen:
        model.requires_grad_(False)
        logger.info("freeze: the encoder is frozen; training a %d-speaker softmax layer on its affine output",
                    len(source.speakers))

    def make_batches(start_step: int):
        sampler = RandomCropSampler(source.utt_speaker, source.lengths, int(scfg["batch_size"]), min_frames, seed=seed,
                                    rank=rank, start_step=start_step, source_name=name,
                                    balance_speakers=bool(scfg["balance_speakers"]))
        return make_loader(source, sampler, crop, num_workers)

    def compute_loss(joint: torch.nn.Module, batch: dict):
        if frozen:
            joint.model.eval()  # batch-norm statistics stay as trained
            with torch.no_grad():
                embeds = joint.model.embed(batch["feats"], normalize=False)
        else:
            embeds = joint.model.embed(batch["feats"], dropout=dropout, normalize=False)
        loss = joint.criterion(embeds, batch["speakers"])
        return loss, {"accuracy": float(joint.criterion.last_accuracy)}

    return make_batches, compute_loss, criterion


def _triplet(config, source, model, crop, min_frames, seed, rank, world_size, num_workers, name):
    import torch

    from spkid.losses.triplet import TripletCosineLoss, check_embeddings

    tcfg = config["triplet"]
    batch = tcfg["batch"]
    if batch not in BATCHES:
        raise SpkidError(f"triplet.batch must be one of {', '.join(BATCHES)}, not '{batch}'")
    criterion = TripletCosineLoss(float(tcfg["margin"]))
    collapse = float(tcfg["collapse_cosine"])
    if batch == "hard":
        from spkid.data.hard_triplets import HardTripletBatches

        def make_hard(start_step: int, log_notes: bool = False):
            return HardTripletBatches(model, source, crop, tcfg["hard"], seed, rank, world_size, start_step,
                                      num_workers, name, log_notes, min_frames)

        make_hard(0, log_notes=True)  # checks the speakers now
        make_batches = make_hard
    else:
        from spkid.data.loader import make_loader
        from spkid.data.triplets import RandomTripletSampler

        triplets = int(tcfg["random"]["triplets"])
        RandomTripletSampler(source.utt_speaker, source.lengths, triplets, min_frames, source_name=name)

        def make_batches(start_step: int):
            sampler = RandomTripletSampler(source.utt_speaker, source.lengths, triplets, min_frames, seed=seed,
                                           rank=rank, start_step=start_step, source_name=name)
            return _with_steps(make_loader(source, sampler, crop, num_workers), start_step)

    def compute_loss(joint: torch.nn.Module, batch: dict):
        embeds = joint.model(batch["feats"])
        mean_cos = check_embeddings(embeds, int(batch["step"]) + 1, collapse)
        loss = joint.criterion(embeds)
        metrics = {**joint.criterion.last, "mean_cos": mean_cos}
        for key in ("select_ms", "candidate_s"):
            if key in batch:
                metrics[key] = float(batch[key])
        return loss, metrics

    return make_batches, compute_loss, criterion
