"""GE2E (Wan et al. 2018; PaddleSpeech examples/ge2e): LSTM d-vector encoder, N x M batches, GE2E loss."""
from __future__ import annotations

import logging

from spkid.tasks import build_encoder, common, open_training_data
from spkid.train.trainer import Task

logger = logging.getLogger("spkid.train")

DEFAULTS: dict = {
    "model": {"name": "ge2e", "args": {}},  # 3 x 256 LSTM, 256-dim d-vectors (the encoder's defaults)
    "features": {"type": "kaldi-fbank", "num_mel_bins": 40, "dither": 0.0, "sample_frequency": 16000.0,
                 "cmn": False, "vad": None},
    "data": {"speakers_per_batch": 64, "utterances_per_speaker": 10, "crop_frames": 160,
             "sample_with_replacement": False, "source": "auto", "num_workers": 2},
    "loss": {"method": "softmax", "init_w": 10.0, "init_b": -5.0, "wb_grad_scale": 0.01},
    **common(optim={"lr": 1e-4, "grad_clip": 3.0}, train={"max_steps": 100000, "stall_warn_seconds": 2.0}),
}
RANGES = {"data.speakers_per_batch": ">= 2", "data.utterances_per_speaker": ">= 2", "loss.init_w": "> 0",
          "loss.wb_grad_scale": ">= 0"}
VALID_DATA_ALONE = False


def build_task(config: dict, data_dir: str, rank: int, world_size: int, valid_data: str | None = None,
               valid_trials: str | None = None) -> Task:
    import torch

    from spkid.data.augmentation import training_augmentation
    from spkid.data.loader import make_loader
    from spkid.data.samplers import SpeakerUtteranceSampler
    from spkid.losses.ge2e import GE2ELoss
    from spkid.models.windows import extraction_config

    dcfg, lcfg = config["data"], config["loss"]
    feature_config, source, _, _ = open_training_data(config, data_dir)
    augmentation = training_augmentation(config, data_dir, rank, source)
    name, model_config, model = build_encoder(config, source.dim)
    criterion = GE2ELoss(lcfg["init_w"], lcfg["init_b"], lcfg["method"])
    criterion.before_optimizer_step = lambda: criterion.scale_grads(float(lcfg["wb_grad_scale"]))
    n, m = int(dcfg["speakers_per_batch"]), int(dcfg["utterances_per_speaker"])

    def make_batches(start_step: int):
        if getattr(source, "streamed", False):  # shards: N x M from each reading slot's speaker buffer
            return source.loader(("speakers", n, m), int(dcfg["crop_frames"]), seed=int(config["train"]["seed"]),
                                 rank=rank, world_size=world_size, start_step=start_step,
                                 num_workers=int(dcfg["num_workers"]), augmentation=augmentation)
        sampler = SpeakerUtteranceSampler(
            source.utt_speaker, source.lengths, n, m, min_frames=int(dcfg["crop_frames"]),
            seed=int(config["train"]["seed"]), rank=rank, world_size=world_size, start_step=start_step,
            replacement=bool(dcfg["sample_with_replacement"]), source_name=str(data_dir))
        return make_loader(source, sampler, int(dcfg["crop_frames"]), int(dcfg["num_workers"]),
                           augmentation=augmentation)

    def compute_loss(joint: torch.nn.Module, batch: dict):
        feats = batch["feats"]
        embeds = joint.model(feats).view(n, m, -1)
        loss = joint.criterion(embeds)
        return loss, {"accuracy": float(joint.criterion.last_accuracy),
                      "w": float(joint.criterion.w.detach()), "b": float(joint.criterion.b.detach())}

    extraction = extraction_config(config["extraction"])
    validate = None
    if valid_data and valid_trials:
        from spkid.tasks.validation import TrialValidator

        validate = TrialValidator(valid_data, valid_trials, feature_config, extraction)
    make_batches(0)  # fail early (too few speakers) before any process starts training
    return Task(model=model, criterion=criterion, model_name=name, model_config=model_config,
                feature_config=feature_config, extraction=extraction, make_batches=make_batches,
                compute_loss=compute_loss, validate=validate)
