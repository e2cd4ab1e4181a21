"""spkid extract-embeddings: utterance embeddings from a trained model into Kaldi ark/scp or .npy files."""
from __future__ import annotations

import click

from spkid.bin.options import MODEL_HELP, KaldiCommand, trust_torchscript_option


@click.command("extract-embeddings", cls=KaldiCommand)
@click.option("--model", "model_path", required=True, metavar="MODEL", help=MODEL_HELP)
@trust_torchscript_option
@click.option("--scp", "wav_scp", default=None, metavar="WAV_SCP", help="Kaldi wav.scp (paths or `cmd |`).")
@click.option("--segments", default=None, help="Segments file for --scp.")
@click.option("--data", "data_dir", default=None, metavar="DIR", help="Kaldi data dir (wav.scp [+segments]).")
@click.option("--use-feats", is_flag=True, help="With --data: embed DIR/feats.scp (+vad.scp) instead of audio.")
@click.option("--input", "input_dir", default=None, metavar="DIR", help="A folder of audio files.")
@click.option("--pattern", default="*.wav", show_default=True, help="File pattern under --input (recursive).")
@click.option("--output", "wspecifier", default=None, metavar="WSPEC",
              help="Kaldi wspecifier, e.g. ark,scp:emb.ark,emb.scp or ark:- .")
@click.option("--npy-dir", default=None, metavar="DIR",
              help="Also/instead write one .npy per utterance (mirroring --input; <spk>/<utt>.npy for data dirs).")
@click.option("--channel", type=int, default=-1, show_default=True,
              help="Channel of multi-channel audio to use (0-based); -1 expects mono audio. A channel field "
                   "in segments takes precedence.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1 ...")
@click.option("--num-workers", type=int, default=2, show_default=True,
              help="Processes computing features from audio.")
@click.option("--batch-size", type=int, default=256, show_default=True, help="Windows per network batch.")
@click.option("--precision", type=click.Choice(["float32", "bfloat16"]), default="float32", show_default=True,
              help="bfloat16: the network under autocast; faster on CPUs with AVX512-BF16/AMX and on GPUs, "
                   "embeddings close to float32 (cosine ~0.995 on 1 s clips, ~0.9999 on long utterances).")
@click.option("--extraction", "extraction_text", default=None, metavar="YAML",
              help="Windows instead of the checkpoint's, as the config's `extraction:` section, e.g. "
                   "'{scheme: full}' (whole utterances; longer than max_frames, default 30000 = 5 min: cut "
                   "into equal pieces, their embeddings averaged; CAM++ needs ~250 MB a minute, so "
                   "'{scheme: full, max_frames: 6000}' bounds it to ~250 MB, 0 never cuts) or "
                   "'{scheme: overlap, window_frames: 300, overlap: 0.5}' "
                   "(300-frame chunks every 150 frames, their embeddings averaged).")
def main(model_path, trust_torchscript, wav_scp, segments, data_dir, use_feats, input_dir, pattern, wspecifier,
         npy_dir, channel, device, num_workers, batch_size, precision, extraction_text) -> None:
    """Extract utterance embeddings (d-vectors) with a trained or imported model.

    The model carries its front-end, so audio needs no feature options. Windows of many
    utterances are embedded together in large batches. Failed utterances are reported and skipped
    (exit status 1); the ark/scp written hold only complete entries.

    \b
    Example:
      spkid import-resemblyzer --output exp/ge2e_pretrained
      spkid extract-embeddings --model exp/ge2e_pretrained --scp data/test/wav.scp \\
          --output ark,scp:exp/emb/test.ark,exp/emb/test.scp
    """
    import logging

    from spkid.errors import FailureLog, SpkidError
    from spkid.extract import (
        utterances_from_data_dir,
        utterances_from_folder,
        utterances_from_scp,
        write_embeddings,
    )
    from spkid.inference import load_embedder
    from spkid.kaldi.io import check_outputs

    chosen = [x for x in (wav_scp, data_dir, input_dir) if x is not None]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one input: --scp, --data or --input")
    if use_feats and data_dir is None:
        raise click.UsageError("--use-feats goes with --data")
    if wspecifier:
        check_outputs(wspecifier)
    failures = FailureLog()
    if wav_scp is not None:
        utts, problems = utterances_from_scp(wav_scp, segments)
    elif data_dir is not None:
        utts, problems = utterances_from_data_dir(data_dir, use_feats)
    else:
        utts, problems = utterances_from_folder(input_dir, pattern), []
    for utt, reason in problems:
        failures.fail(utt, reason)
    for utt in utts:
        if utt.audio is not None:
            utt.audio.channel = channel
    embedder = load_embedder(model_path, device, precision, trust_torchscript=trust_torchscript)
    if extraction_text is not None:
        from spkid.models.windows import extraction_config
        from spkid.train.config import parse_value

        parsed = parse_value(extraction_text)
        if not isinstance(parsed, dict):
            raise SpkidError(f"--extraction wants a mapping such as '{{scheme: full}}', got '{extraction_text}'")
        embedder.extraction = extraction_config(parsed)
    logging.getLogger("spkid.extract").info("model %s on %s (%s): %d utterances", embedder.checkpoint,
                                            embedder.device, embedder.precision, len(utts))
    if not utts:
        raise SpkidError("no utterances to embed")
    write_embeddings(utts, embedder, wspecifier, npy_dir, failures, num_workers, batch_size)
    failures.finish()
