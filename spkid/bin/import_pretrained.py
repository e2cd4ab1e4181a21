"""spkid import-pretrained: a pretrained model by name as a spkid exp dir (or --list the names)."""
from __future__ import annotations

import click


@click.command("import-pretrained")
@click.argument("name", required=False)
@click.option("--output", "-o", default=None, metavar="EXPDIR", help="Where to write the exp dir.")
@click.option("--list", "list_names", is_flag=True, help="List the known names and exit.")
def main(name: str | None, output: str | None, list_names: bool) -> None:
    """Import a pretrained model by NAME as a spkid exp dir (EXPDIR/checkpoints/step-00000000.pt).

    The same names work wherever a model is expected in Python (`spkid.load_model("resemblyzer-ge2e")`),
    imported once into the cache ($SPKID_CACHE, else ~/.cache/spkid).

    \b
    Example:
      spkid import-pretrained --list
      spkid import-pretrained resemblyzer-ge2e --output exp/ge2e_pretrained
    """
    from spkid.pretrained import PRETRAINED, import_pretrained

    if list_names:
        for key in sorted(PRETRAINED):
            click.echo(f"{key}\t{PRETRAINED[key].description}")
        return
    if name is None or output is None:
        raise click.UsageError("give NAME and --output (or --list)")
    import_pretrained(name, output)
