"""What `spkid train` checks before it writes anything into the exp dir (EXPDIR/.lock, train.log): the
front-end, the encoder built on the meta device (no memory), the classification head, the optimizer,
the augmentation section, the batch size, and the paths it was given. Each problem is one line."""
from __future__ import annotations

from pathlib import Path

from spkid.errors import SpkidError

MAX_BATCH_VALUES = 2 ** 30  # features of one batch (crops x frames x dims): 4 GiB of float32


def check_before_writing(config: dict, *, data_dir: str, checkpoint: str | None = None,
                         valid_data: str | None = None, valid_trials: str | None = None, device: str = "auto"
                         ) -> None:
    """Raise SpkidError for a value or path that would make the run fail once it has started, or ask for
    more memory than can be had (spkid.models.MAX_PARAMETERS; MAX_BATCH_VALUES; on the CPU, about 16 bytes
    a parameter against the memory available)."""
    _check_paths(data_dir, checkpoint, valid_data, valid_trials)
    dim = _frontend_dim(config)
    model = _meta_encoder(config, dim)
    if config["task"] == "classification":
        _meta_head(config, model)
    _optimizer(config)
    _augmentation(config, data_dir)
    _batch_size(config, dim)
    _memory(config, model, device)


def crops_per_batch(config: dict) -> int:
    """How many crops one training batch (or hard-triplet candidate batch) holds."""
    task, data = config["task"], config["data"]
    if task == "classification":
        return int(config["classification"]["batch_size"])
    if task == "ge2e":
        return int(data["speakers_per_batch"]) * int(data["utterances_per_speaker"])
    triplet = config["triplet"]
    if triplet["batch"] == "hard":
        hard = triplet["hard"]
        return max(int(hard["candidate_speakers"]) * int(hard["candidate_utterances"]),
                   3 * int(hard["anchors"]) * int(hard["positives_per_anchor"]) * int(hard["negatives_per_anchor"]))
    return 3 * int(triplet["random"]["triplets"])


def _batch_size(config: dict, dim: int) -> None:
    crops, frames = crops_per_batch(config), int(config["data"]["crop_frames"])
    if crops * frames * dim > MAX_BATCH_VALUES:
        raise SpkidError(f"a batch of {crops:,} crops x {frames:,} frames x {dim} features is "
                         f"{crops * frames * dim * 4 / 2**30:,.1f} GiB of float32 features alone, more than the "
                         f"{MAX_BATCH_VALUES * 4 // 2**30} GiB spkid allows; lower data.crop_frames or the batch size")


def _memory(config: dict, model, device: str) -> None:
    """On the CPU: weights, gradients and two optimizer moments (16 bytes a parameter) must fit in the memory
    available now."""
    from spkid.devices import parse_device
    from spkid.models import count_parameters

    if parse_device(device).type != "cpu":
        return
    available = _available_memory()
    need = 16 * count_parameters(model)
    if available is not None and need > available:
        raise SpkidError(f"model '{config['model']['name']}' has {count_parameters(model):,} parameters: training "
                         f"needs about {need / 2**30:,.1f} GiB (weights, gradients, optimizer state), more than the "
                         f"{available / 2**30:,.1f} GiB of memory available; check model.args")


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _check_paths(data_dir: str, checkpoint: str | None, valid_data: str | None, valid_trials: str | None) -> None:
    for option, path in (("--data", data_dir), ("--valid-data", valid_data)):
        if path is not None and not Path(path).is_dir():
            what = "is not a folder" if Path(path).exists() else "does not exist"
            raise SpkidError(f"{option} {path}: {what} (a Kaldi data dir or a make-shards folder)")
    if not any((Path(data_dir) / name).exists() for name in ("wav.scp", "feats.scp", "shards.json")):
        raise SpkidError(f"--data {data_dir}: no wav.scp, feats.scp or shards.json (a Kaldi data dir or a "
                         "make-shards folder)")
    for option, path in (("--checkpoint", checkpoint), ("--valid-trials", valid_trials)):
        if path is not None and not str(path).rstrip().endswith("|") and path != "-" and not Path(path).is_file():
            what = "is not a file" if Path(path).exists() else "does not exist"
            raise SpkidError(f"{option} {path}: {what}")


def _frontend_dim(config: dict) -> int:
    from spkid.features.frontend import build_frontend

    try:
        return int(build_frontend(config["features"]).dim)
    except SpkidError as err:
        raise SpkidError(f"config section 'features': {err}") from None
    except (TypeError, ValueError, KeyError) as err:
        raise SpkidError(f"config section 'features': {err}") from None


def _meta_encoder(config: dict, dim: int):
    """The encoder built on the meta device: its arguments are checked, no memory is taken."""
    import torch

    from spkid.tasks import build_encoder

    with torch.device("meta"):
        _, _, model = build_encoder(config, dim)
    return model


def _meta_head(config: dict, model) -> None:
    import torch

    from spkid.tasks.classification import build_head

    embed_dim = config["model"].get("args", {}).get("embed_dim") or getattr(model, "embed_dim", None)
    if embed_dim is None:
        return
    with torch.device("meta"):
        build_head(config, int(embed_dim), 2)


def _optimizer(config: dict) -> None:
    import torch

    from spkid.train.trainer import build_optimizer

    build_optimizer([torch.nn.Parameter(torch.zeros(1))], config["optim"])


def _augmentation(config: dict, data_dir: str) -> None:
    from spkid.data.augmentation import TrainAugmentation

    try:
        TrainAugmentation(config.get("augment") or {}, int(config["train"]["seed"]), babble_from=str(data_dir))
    except (TypeError, ValueError) as err:
        raise SpkidError(f"config section 'augment': {err}") from None
