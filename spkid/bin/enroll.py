"""spkid enroll: add a speaker's recordings to a speaker database (Kaldi spk_xvector.ark/scp + num_utts.ark)."""
from __future__ import annotations

import click

from spkid.bin.options import MODEL_HELP, trust_torchscript_option


@click.command("enroll")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--model", "model_path", default=None, metavar="MODEL",
              help=f"{MODEL_HELP} Required for a new database, else it must be the database's model "
                   "(default: the one DIR/model.json names).")
@trust_torchscript_option
@click.option("--db", "db_dir", required=True, metavar="DIR", help="Database folder (created when new).")
@click.option("--speaker", required=True, help="Speaker name (a Kaldi key: no whitespace).")
@click.option("--device", default="auto", show_default=True)
def main(files: tuple[str, ...], model_path: str | None, trust_torchscript: bool, db_dir: str, speaker: str,
         device: str) -> None:
    """Enroll SPEAKER from FILE... into the speaker database DIR.

    The speaker's mean embedding is stored as Kaldi's ivector-mean writes it (DIR/spk_xvector.ark,scp
    and DIR/num_utts.ark), with the model reference in DIR/model.json. Enrolling a known speaker again
    adds the new recordings to its mean. A file that cannot be read is reported and skipped (exit
    status 1); the others are enrolled. Several enrollments into one DIR at once are safe: each holds
    DIR/.lock while it reads, updates and writes the database (the embedding is done before).

    \b
    Example:
      spkid enroll --model resemblyzer-ge2e --db db --speaker alice alice_1.wav alice_2.wav
      spkid identify --db db unknown.wav
    """
    from pathlib import Path

    from spkid.api import load_model
    from spkid.enroll import SpeakerDB, check_model, check_speaker_name
    from spkid.errors import FailureLog, SpkidError

    check_speaker_name(speaker)
    exists = SpeakerDB.exists(db_dir)
    if not exists and model_path is None:
        raise click.UsageError(f"{db_dir} is a new database: give --model")
    if model_path is None:
        model = SpeakerDB.load_own_model(db_dir, device)
    else:
        model = load_model(model_path, device, trust_torchscript=trust_torchscript)
        if exists:  # before any work; checked again under the lock
            check_model(SpeakerDB.read_info(db_dir), model, Path(db_dir))
    failures = FailureLog("files")
    good = []
    for path, (emb, err) in zip(files, model.embed_each(list(files))):
        if err is not None:
            failures.fail(path, err.removeprefix(f"{path}: "))
        else:
            good.append(emb)
            failures.ok()
    if not good:
        raise SpkidError(f"speaker {speaker}: no file could be embedded; database unchanged")
    with SpeakerDB.updating(db_dir, model) as db:  # DIR/.lock held: concurrent enrollments all count
        db.add_embeddings(speaker, good)
    click.echo(f"{speaker} {db.num_utts(speaker)}")
    failures.finish()
