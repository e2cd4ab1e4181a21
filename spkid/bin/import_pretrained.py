"""spkid import-pretrained: a published speaker encoder by name as a spkid exp dir (or --list the names)."""
from __future__ import annotations

import click


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
    3D-Speaker's speakerlab CAMPPlus on the same audio. The same names work wherever a model is
    expected in Python (`spkid.load_model("campplus-zh-en")`), imported once into the cache.

    \b
    Example:
      spkid import-pretrained --list
      spkid import-pretrained campplus-zh-en --output exp/campplus_zh_en
      spkid import-pretrained campplus --checkpoint campplus_voxceleb.bin --embedding-dim 512 -o exp/cam
      spkid extract-embeddings --model exp/campplus_zh_en --data data/test --output ark,scp:emb.ark,emb.scp
    """
    from spkid.pretrained import PRETRAINED, import_pretrained

    if list_names:
        for known, entry in PRETRAINED.items():
            click.echo(f"{known}\t{entry.description}")
        return
    if name is None or output is None:
        raise click.UsageError("give NAME and --output EXPDIR (or --list)")
    import_pretrained(name, output, checkpoint, int(embedding_dim) if embedding_dim else None)
