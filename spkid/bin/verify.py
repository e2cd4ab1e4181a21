"""spkid verify: are two recordings the same speaker? Prints the decision, the score and the threshold."""
from __future__ import annotations

import click

from spkid.bin.options import MODEL_HELP, trust_torchscript_option


@click.command("verify")
@click.argument("files", nargs=-1, required=True, metavar="ENROLL.wav [ENROLL2.wav ...] TEST.wav")
@click.option("--model", "model_path", required=True, metavar="MODEL", help=MODEL_HELP)
@trust_torchscript_option
@click.option("--calibration", default=None, metavar="JSON",
              help="From `spkid calibrate` on a development list: its threshold (and the LLR) are used. "
                   "Default: calibration.json or scores/calibration.json in the model's exp dir.")
@click.option("--threshold", type=float, default=None, help="Cosine-score threshold (instead of --calibration).")
@click.option("--channel", type=int, default=-1, show_default=True,
              help="Channel of multi-channel files to use (0-based); -1 expects mono audio.")
@click.option("--device", default="auto", show_default=True)
def main(files: tuple[str, ...], model_path: str, trust_torchscript: bool, calibration: str | None,
         threshold: float | None, channel: int, device: str) -> None:
    """Decide whether TEST.wav is spoken by the enrolled speaker (cosine score of the embeddings).

    Several enrollment files are averaged into one model. The threshold comes from a calibration
    file made by `spkid calibrate` on scores of a development trial list with the same model (the
    EER, minDCF or Bayes operating point chosen there; by default the one in the model's exp dir, as
    `spkid import-pretrained campplus-zh-en` writes), or is given with --threshold. Prints
    `same` or `different`, the score and the threshold; exit status 0 either way.

    \b
    Example:
      spkid calibrate --trials data/dev/trials --scores exp/ge2e/scores/dev.cosine --output calib.json
      spkid verify --model exp/ge2e --calibration calib.json alice_1.wav alice_2.wav unknown.wav
    """
    import numpy as np

    from spkid.api import find_calibration
    from spkid.errors import SpkidError
    from spkid.extract import embed_file
    from spkid.inference import load_embedder, resolve_model

    if len(files) < 2:
        raise click.UsageError("give at least one enrollment file and one test file")
    if calibration is not None and threshold is not None:
        raise click.UsageError("give one of --calibration (see `spkid calibrate`) or --threshold, not both")
    if threshold is not None:
        from spkid.api import check_threshold

        threshold = check_threshold(threshold)
    source = resolve_model(model_path)
    if calibration is None and threshold is None:
        found = find_calibration(source.root)
        if found is None:
            raise click.UsageError(f"no calibration.json in the exp dir of {model_path}: give --calibration "
                                   "(see `spkid calibrate`) or --threshold")
        calibration = str(found)
    calib = None
    if calibration is not None:
        from spkid.scoring.calibration import Calibration

        calib = Calibration.load(calibration)
        threshold = calib.threshold
    embedder = load_embedder(source, device, trust_torchscript=trust_torchscript)
    if calib is not None:
        calib.check_model(embedder.fingerprint, model_path, calibration)
    embeddings = [embed_file(embedder, f, channel) for f in files]
    for kind, bad in (("has NaN or infinite values", lambda e: not np.isfinite(e).all()),
                      ("is zero", lambda e: not np.linalg.norm(e) > 0)):
        found = [f for f, e in zip(files, embeddings) if bad(e)]
        if found:
            raise SpkidError(f"the embedding of {', '.join(found)} {kind}; cannot score")
    enroll, test = np.mean(embeddings[:-1], axis=0), embeddings[-1]
    norms = np.linalg.norm(enroll) * np.linalg.norm(test)
    if not norms > 0:
        raise SpkidError("the mean of the enrollment embeddings is zero; cannot score")
    score = float(np.dot(enroll, test) / norms)
    decision = "same" if score >= threshold else "different"
    text = f"{decision} score={score:.4f} threshold={threshold:.4f}"
    if calib is not None:
        text += f" ({calib.operating_point} point of {calibration}; llr={float(calib.apply(score)):.3f})"
    click.echo(text)
