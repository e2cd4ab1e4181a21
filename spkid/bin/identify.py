"""spkid identify: who, among the enrolled speakers, is speaking (or unknown)."""
from __future__ import annotations

import click


@click.command("identify")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--db", "db_dir", required=True, metavar="DIR", help="Database from `spkid enroll`.")
@click.option("--model", "model_path", default=None, metavar="MODEL",
              help="The database's model (default: the one recorded in DIR/model.json), e.g. its .onnx export.")
@click.option("--top-n", type=click.IntRange(min=1), default=1, show_default=True, help="Candidates listed per file.")
@click.option("--calibration", default=None, metavar="JSON", help="Threshold from `spkid calibrate` (default: the "
              "model's calibration.json or scores/calibration.json).")
@click.option("--threshold", type=float, default=None, help="Cosine-score threshold for open-set decisions.")
@click.option("--device", default="auto", show_default=True)
def main(files: tuple[str, ...], db_dir: str, model_path: str | None, top_n: int, calibration: str | None,
         threshold: float | None, device: str) -> None:
    """Identify the speaker of each FILE among those enrolled in DIR (open set).

    Prints one line per file: the file, the best speaker or `unknown` when its cosine score is below
    the threshold, then the TOP_N best candidates as `speaker:score`. The threshold is --threshold,
    else that of --calibration, else the model's own calibration. Unreadable files are reported and
    skipped (exit status 1).

    \b
    Example:
      spkid identify --db db --top-n 3 --threshold 0.75 unknown1.wav unknown2.wav
      # unknown1.wav alice alice:0.8312 bob:0.6120 carol:0.5507
    """
    from spkid.api import load_model
    from spkid.enroll import SpeakerDB
    from spkid.errors import FailureLog

    if threshold is not None and calibration is not None:
        raise click.UsageError("give --threshold or --calibration, not both")
    if model_path is None:
        model_path = SpeakerDB.read_info(db_dir)["model"]
    db = SpeakerDB.load(db_dir, load_model(model_path, device, calibration))
    limit = db.decision_threshold(threshold)
    failures = FailureLog("files")
    for path, (emb, err) in zip(files, db.model.embed_each(list(files))):
        if err is not None:
            failures.fail(path, err.removeprefix(f"{path}: "))
            continue
        ranked = db.scores_of_embedding(emb)
        best, score = ranked[0]
        decision = best if score >= limit else "unknown"
        click.echo(" ".join([path, decision] + [f"{name}:{value:.4f}" for name, value in ranked[:top_n]]))
        failures.ok()
    failures.finish()
