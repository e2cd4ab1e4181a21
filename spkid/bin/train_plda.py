"""spkid train-plda: mean, optional LDA and a PLDA model, as Kaldi's x-vector recipe trains its back-end."""
from __future__ import annotations

import logging

import click

from spkid.bin.options import KALDI_BOOL, KaldiCommand, config_option

logger = logging.getLogger("spkid.train-plda")


@click.command("train-plda", cls=KaldiCommand)
@click.option("--lda-dim", type=click.IntRange(0), default=0, show_default=True,
              help="Reduce to this dimension with LDA first (ivector-compute-lda --dim); 0: no LDA.")
@click.option("--total-covariance-factor", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="LDA: 0 makes the within-class covariance unit, 1 the total covariance.")
@click.option("--covariance-floor", type=click.FloatRange(0), default=1e-6, show_default=True,
              help="LDA: floor the covariance eigenvalues at this times the largest.")
@click.option("--length-norm", type=KALDI_BOOL, default=True, show_default=True,
              help="Length-normalise (ivector-normalize-length) after mean/LDA, for training and scoring.")
@click.option("--num-em-iters", type=click.IntRange(1), default=10, show_default=True,
              help="Iterations of E-M for PLDA estimation (ivector-compute-plda).")
@click.option("--kaldi-dir", default=None, metavar="DIR",
              help="Also write Kaldi's mean.vec, transform.mat (with --lda-dim) and binary plda in DIR.")
@config_option
@click.argument("embeddings", metavar="<embeddings-rspecifier>")
@click.argument("utt2spk", metavar="<utt2spk>")
@click.argument("model_out", metavar="<model-out>")
def main(embeddings: str, utt2spk: str, model_out: str, lda_dim: int, total_covariance_factor: float,
         covariance_floor: float, length_norm: bool, num_em_iters: int, kaldi_dir: str | None) -> None:
    """Train the PLDA back-end: training mean, optional LDA, length normalisation, PLDA (EM as Kaldi).

    The steps of Kaldi's egs/voxceleb/v2 recipe in one command: the mean of the training embeddings
    (ivector-mean), LDA on mean-subtracted embeddings (ivector-compute-lda), length normalisation
    (ivector-normalize-length) and the two-covariance PLDA (ivector-compute-plda, 10 E-M iterations from
    unit covariances, then Kaldi's diagonal form). Speakers come from <utt2spk>; utterances without a
    speaker or without an embedding are skipped with a warning. PLDA needs speakers with several
    utterances. <model-out> is a .npz file (format in spkid/scoring/backend.py) for `spkid score --plda`.

    \b
    Example:
      spkid train-plda --lda-dim 200 scp:exp/train/xvector.scp data/train/utt2spk exp/train/plda.npz
      spkid train-plda --lda-dim=128 --kaldi-dir exp/train/kaldi scp:xvector.scp utt2spk plda.npz
    """
    from pathlib import Path

    from spkid.atomic import check_writable
    from spkid.errors import SpkidError
    from spkid.kaldi.tables import read_text_table
    from spkid.scoring.backend import train_backend
    from spkid.scoring.embeddings import first_few, load_embeddings

    check_writable(model_out, "model")
    if kaldi_dir:
        check_writable(Path(kaldi_dir) / "plda", "--kaldi-dir output")
    utt2spk_path = utt2spk.split(":", 1)[1] if utt2spk.startswith(("ark:", "ark,t:")) else utt2spk
    spk_of = read_text_table(utt2spk_path)
    emb = load_embeddings(embeddings)
    no_spk = [k for k in emb.keys if k not in spk_of]
    no_emb = [u for u in spk_of if u not in emb.index]
    if no_spk:
        logger.warning("%d embeddings have no entry in %s, skipping them: %s", len(no_spk), utt2spk_path,
                       first_few(no_spk))
    if no_emb:
        logger.warning("%d utterances of %s have no embedding: %s", len(no_emb), utt2spk_path,
                       first_few(no_emb))
    keys = [k for k in emb.keys if k in spk_of]
    if not keys:
        raise SpkidError(f"no embedding in {embeddings} has a speaker in {utt2spk_path}")
    x = emb.matrix[emb.rows(keys)]
    labels = [spk_of[k] for k in keys]
    logger.info("Read %d embeddings of dimension %d from %d speakers", len(keys), emb.dim, len(set(labels)))
    model, objf = train_backend(x, labels, lda_dim or None, length_norm, num_em_iters,
                                total_covariance_factor, covariance_floor)
    logger.info("PLDA objective per example: %g after the first iteration, %g after the last", objf[0],
                objf[-1])
    try:
        model.save(model_out)
    except OSError as err:  # e.g. a full disk: found only when writing
        raise SpkidError(f"{model_out}: cannot write ({err.strerror or err})") from None
    logger.info("Wrote %s (dimension %d%s)", model_out, model.plda.dim,
                f", LDA from {emb.dim}" if model.lda is not None else "")
    if kaldi_dir:
        import io

        import numpy as np
        from kaldiio.matio import write_array

        from spkid.atomic import atomic_write_bytes
        from spkid.scoring.embeddings import write_vector_file
        from spkid.scoring.plda import kaldi_plda_bytes

        out = Path(kaldi_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_vector_file(str(out / "mean.vec"), model.mean)
        if model.lda is not None:
            buffer = io.BytesIO()
            write_array(buffer, model.lda.astype(np.float32))  # Kaldi's binary matrix, as ivector-compute-lda
            atomic_write_bytes(out / "transform.mat", buffer.getvalue())
        atomic_write_bytes(out / "plda", kaldi_plda_bytes(model.plda))
        logger.info("Wrote Kaldi's mean.vec%s and plda to %s", ", transform.mat" if model.lda is not None
                    else "", out)
