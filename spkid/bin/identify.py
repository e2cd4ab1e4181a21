"""spkid identify: who, among the enrolled speakers, is speaking (or unknown)."""
from __future__ import annotations

import logging

import click

from spkid.bin.options import MODEL_HELP, trust_torchscript_option

logger = logging.getLogger("spkid.identify")


@click.command("identify")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--db", "db_dir", required=True, metavar="DIR", help="Database from `spkid enroll`.")
@click.option("--model", "model_path", default=None, metavar="MODEL",
              help=f"The database's model, e.g. its .onnx export (default: the one DIR/model.json names, never "
                   f"a TorchScript file). {MODEL_HELP}")
@trust_torchscript_option
@click.option("--top-n", type=click.IntRange(min=1), default=1, show_default=True, help="Candidates listed per file.")
@click.option("--calibration", default=None, metavar="JSON", help="Threshold from `spkid calibrate` (default: the "
              "model's calibration.json or scores/calibration.json).")
@click.option("--threshold", type=float, default=None, help="Cosine-score threshold for open-set decisions.")
@click.option("--device", default="auto", show_default=True)
def main(files: tuple[str, ...], db_dir: str, model_path: str | None, trust_torchscript: bool, top_n: int,
         calibration: str | None, threshold: float | None, device: str) -> None:
    """Identify the speaker of each FILE among those enrolled in DIR.

    Prints one line per file: the file, the best speaker or `unknown` when its cosine score is below
    the threshold, then the TOP_N best candidates as `speaker:score`. The threshold is --threshold,
    else that of --calibration, else the model's own calibration (open set); with none of them the
    best speaker is always named (closed set). The log says which threshold was used. Unreadable
    files are reported and skipped (exit status 1).

    \b
    Example:
      spkid identify --db db --top-n 3 --threshold 0.75 unknown1.wav unknown2.wav
      # unknown1.wav alice alice:0.8312 bob:0.6120 carol:0.5507
    """
    from pathlib import Path

    from spkid.api import load_model
    from spkid.enroll import MODEL_FILE, SpeakerDB
    from spkid.errors import FailureLog
    from spkid.inference import database_source

    if threshold is not None and calibration is not None:
        raise click.UsageError("give --threshold or --calibration, not both")
    if model_path is None:  # the database's own model: checked before loading, never TorchScript
        model = load_model(database_source(SpeakerDB.read_info(db_dir), Path(db_dir) / MODEL_FILE), device, calibration)
    else:
        model = load_model(model_path, device, calibration, trust_torchscript=trust_torchscript)
    db = SpeakerDB.load(db_dir, model)
    limit, how = db.threshold_in_use(threshold)
    logger.info("threshold: %s (%s)", "none" if limit is None else f"{limit:.4f}", how)
    failures = FailureLog("files")
    for path, (emb, err) in zip(files, db.model.embed_each(list(files))):
        if err is not None:
            failures.fail(path, err.removeprefix(f"{path}: "))
            continue
        ranked = db.scores_of_embedding(emb)
        best, score = ranked[0]
        decision = best if limit is None or score >= limit else "unknown"
        click.echo(" ".join([path, decision] + [f"{name}:{value:.4f}" for name, value in ranked[:top_n]]))
        failures.ok()
    failures.finish()
