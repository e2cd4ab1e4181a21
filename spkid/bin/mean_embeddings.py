"""spkid mean-embeddings: speaker means of embeddings, or their global mean (as Kaldi's ivector-mean)."""
from __future__ import annotations

import logging

import click

from spkid.bin.options import KALDI_BOOL, KaldiCommand, config_option

logger = logging.getLogger("spkid.mean-embeddings")


@click.command("mean-embeddings", cls=KaldiCommand)
@click.option("--binary", type=KALDI_BOOL, default=False, show_default=True,
              help="Write the global mean (2-argument form) in binary; Kaldi writes text by default.")
@config_option
@click.argument("args", nargs=-1, required=True)
def main(args: tuple[str, ...], binary: bool) -> None:
    """Average embeddings per speaker (spk2utt), or over a whole table, as Kaldi's ivector-mean.

    \b
    Usage: spkid mean-embeddings <spk2utt> <embedding-rspecifier> <embedding-wspecifier> [<num-utt-wspecifier>]
       or: spkid mean-embeddings <embedding-rspecifier> <mean-wxfilename>

    With 3 or 4 arguments, writes the mean of each speaker's utterance embeddings, keyed by speaker,
    and optionally the number of utterances averaged (`ark,t:num_utts.ark`, for PLDA scoring with
    several enrollment utterances: `spkid score --num-utts`). Utterances without an embedding are
    skipped with a warning, as Kaldi does. With 2 arguments, writes the mean of all embeddings as a
    Kaldi vector file (text unless --binary=true), e.g. mean.vec for `spkid score --mean`.
    As Kaldi's ivector-mean, there is no length normalisation.

    \b
    Example:
      spkid mean-embeddings data/enroll/spk2utt scp:exp/enroll/xvector.scp \\
          ark,scp:exp/enroll/spk_xvector.ark,exp/enroll/spk_xvector.scp ark,t:exp/enroll/num_utts.ark
      spkid mean-embeddings scp:exp/train/xvector.scp exp/train/mean.vec
    """
    from spkid.atomic import check_writable
    from spkid.kaldi.io import TableWriter, check_outputs
    from spkid.scoring.embeddings import (
        global_mean,
        load_embeddings,
        read_spk2utt,
        speaker_means,
        write_int_table,
        write_vector_file,
    )

    if len(args) == 2:
        check_writable(args[1], "mean vector")
        emb = load_embeddings(args[0])
        mean = global_mean(emb)
        write_vector_file(args[1], mean, binary)
        logger.info("Mean of %d embeddings written to %s (norm %g)", len(emb), args[1],
                    float((mean ** 2).sum() ** 0.5))
        return
    if len(args) not in (3, 4):
        raise click.UsageError("expected 2, 3 or 4 arguments (see --help)")
    check_outputs(*args[2:])
    spk2utt = read_spk2utt(args[0])
    emb = load_embeddings(args[1])
    means, counts = speaker_means(emb, spk2utt)
    with TableWriter(args[2]) as writer:
        for key, vec in zip(means.keys, means.matrix):
            writer.write(key, vec)
    if len(args) == 4:
        write_int_table(args[3], counts)
    n_utt = sum(counts.values())
    logger.info("Computed mean of %d speakers (%d with no utterances), consisting of %d utterances",
                len(means), len(spk2utt) - len(means), n_utt)
