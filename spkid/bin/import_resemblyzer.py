"""`spkid import-resemblyzer`: Resemblyzer's pretrained GE2E encoder as a spkid checkpoint."""
from __future__ import annotations

import logging
from pathlib import Path

import click

logger = logging.getLogger("spkid.import-resemblyzer")

INSTALL_HINT = "pip install 'spkid[resemblyzer]'"
# Resemblyzer's extraction defaults (VoiceEncoder.embed_utterance: rate=1.3, min_coverage=0.75).
RESEMBLYZER_EXTRACTION = {"scheme": "resemblyzer", "window_frames": 160, "rate": 1.3, "min_coverage": 0.75,
                          "frame_rate": 100.0}


def resemblyzer_weights() -> tuple[Path, str]:
    """(path of pretrained.pt inside the installed resemblyzer package, resemblyzer's version).

    Found without importing resemblyzer (which would import librosa and webrtcvad).
    """
    import importlib.metadata
    import importlib.util

    from spkid.errors import SpkidError

    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise SpkidError(f"resemblyzer is not installed: {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / "pretrained.pt"
    if not path.is_file():
        raise SpkidError(f"{path}: not found in the installed resemblyzer package "
                         f"(reinstall: {INSTALL_HINT})")
    try:
        version = importlib.metadata.version("resemblyzer")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return path, version


def convert_state_dict(state: dict) -> tuple[dict, dict, dict]:
    """Resemblyzer/RTVC encoder `model_state` -> (GE2EEncoder config, state dict, GE2E loss scalars)."""
    from spkid.errors import SpkidError

    if "linear.weight" not in state or "lstm.weight_ih_l0" not in state:
        raise SpkidError("not a Resemblyzer voice-encoder state (no lstm.weight_ih_l0 / linear.weight)")
    num_layers = sum(1 for k in state if k.startswith("lstm.weight_ih_l"))
    config = {"feat_dim": int(state["lstm.weight_ih_l0"].shape[1]),
              "embed_dim": int(state["linear.weight"].shape[0]),
              "hidden_size": int(state["lstm.weight_hh_l0"].shape[1]),
              "num_layers": num_layers}
    mapped, loss = {}, {}
    for key, value in state.items():
        if key.startswith("lstm."):
            mapped[key] = value
        elif key.startswith("linear."):
            mapped["projection." + key[len("linear."):]] = value
        elif key in ("similarity_weight", "similarity_bias"):  # GE2E loss w, b: not part of the encoder
            loss[key] = float(value.reshape(-1)[0])
        else:
            raise SpkidError(f"unexpected parameter '{key}' in the Resemblyzer weights")
    return config, mapped, loss


def import_resemblyzer(output: str | Path, weights: str | Path | None = None) -> Path:
    """Write OUTPUT/checkpoints/step-00000000.pt from Resemblyzer weights; return its path."""
    from spkid.errors import SpkidError
    from spkid.features.resemblyzer_mel import ResemblyzerFrontend
    from spkid.models import build_model
    from spkid.train.checkpoint import check_weights, checkpoint_name, read_torch_file, save_checkpoint

    if weights is None:
        weights, version = resemblyzer_weights()
        source = f"resemblyzer {version} pretrained.pt"
    else:
        weights = Path(weights)
        source = f"{weights.name} (Resemblyzer format)"
    payload = read_torch_file(weights, "Resemblyzer weights file", "cannot read the Resemblyzer weights")
    state = payload.get("model_state", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict):
        raise SpkidError(f"{weights}: no 'model_state' dict in the Resemblyzer weights")
    check_weights(state, weights)
    try:
        config, mapped, loss = convert_state_dict(state)
    except SpkidError as err:
        raise SpkidError(f"{weights}: {err}") from None

    model = build_model("ge2e", config)
    model.load_state_dict(mapped, strict=True)
    frontend = ResemblyzerFrontend(n_mels=config["feat_dim"])
    extra = {"extraction": dict(RESEMBLYZER_EXTRACTION), "source": source}
    if loss:
        extra["ge2e_loss"] = {"w": loss.get("similarity_weight"), "b": loss.get("similarity_bias")}
    if isinstance(payload, dict) and isinstance(payload.get("step"), int):
        extra["source_step"] = payload["step"]
    path = save_checkpoint(Path(output) / "checkpoints" / checkpoint_name(0), model_name="ge2e",
                           model_config=model.to_config(), feature_config=frontend.to_config(),
                           state_dict=model.state_dict(), step=0, extra=extra)
    logger.info("wrote %s (GE2E %s from %s)", path, config, source)
    return path


@click.command(name="import-resemblyzer")
@click.option("--output", "-o", "output", required=True, metavar="EXPDIR",
              help="Experiment dir; the checkpoint goes to EXPDIR/checkpoints/step-00000000.pt.")
@click.option("--weights", metavar="FILE", default=None,
              help="A Resemblyzer-format encoder .pt (`model_state` with lstm.* and linear.*, e.g. from "
              "Real-Time-Voice-Cloning) instead of the pretrained.pt shipped inside resemblyzer.")
def main(output: str, weights: str | None) -> None:
    """Import Resemblyzer's pretrained GE2E speaker encoder as a spkid checkpoint (no download).

    Takes the weights shipped inside the `resemblyzer` package (resemblyzer/pretrained.pt: a 3-layer
    LSTM GE2E encoder giving 256-dim d-vectors) and writes
    EXPDIR/checkpoints/step-00000000.pt with model "ge2e", the "resemblyzer-mel" front-end
    (volume normalisation to -30 dBFS, webrtcvad silence trimming, 40-band mel power at 16 kHz) and
    Resemblyzer's partial-window extraction (160-frame windows, 1.3 per second). Embeddings extracted
    with it match Resemblyzer's `VoiceEncoder.embed_utterance(preprocess_wav(...))`.
    Needs `pip install 'spkid[resemblyzer]'` (only to find the weights; extraction then needs webrtcvad).

    \b
    Example:
      spkid import-resemblyzer --output exp/ge2e_pretrained
      spkid import-resemblyzer --output exp/rtvc --weights encoder/saved_models/pretrained.pt
    """
    import_resemblyzer(output, weights)
