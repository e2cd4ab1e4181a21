"""spkid make-shards: a Kaldi data dir as lhotse Shar shards (tar shards of audio + cut manifests)."""
from __future__ import annotations

import click


@click.command("make-shards")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, exists=True),
              help="Kaldi data dir: wav.scp (+ segments) and utt2spk.")
@click.option("--output", required=True, type=click.Path(file_okay=False), help="Folder for the shards.")
@click.option("--shard-size", type=int, default=1000, show_default=True, help="Utterances per shard.")
@click.option("--audio-format", type=click.Choice(["flac", "wav"]), default="flac", show_default=True,
              help="How audio is stored in the tar shards (flac: lossless, about half the size of wav).")
@click.option("--nj", type=int, default=1, show_default=True, help="Shards written in parallel.")
def main(data_dir: str, output: str, shard_size: int, audio_format: str, nj: int) -> None:
    """Write the utterances of a data dir as lhotse Shar shards for streamed training.

    Each shard is `cuts.NNNNNN.jsonl.gz` (one cut per utterance, speaker label from utt2spk) and
    `recording.NNNNNN.tar` (the audio, segments cut out). Utterances that cannot be read are reported
    (id, reason) and left out; utterances shorter than one frame (25 ms) are left out with a warning
    listing them; written + failed + too short equals the count in. A killed run is resumed
    by running the same command again: complete shards are kept, the rest are written.

    \b
    Example:
      spkid make-shards --data data/voxceleb2_dev --output shards/voxceleb2_dev --shard-size 1000 --nj 8
      spkid train --config conf/resnet34.yaml --data shards/voxceleb2_dev --output exp/resnet34
    """
    from spkid.atomic import exclusive_lock
    from spkid.data.shards import make_shards

    with exclusive_lock(output, "make-shards run"):  # two runs into one folder would remove each other's shards
        log = make_shards(data_dir, output, shard_size=shard_size, audio_format=audio_format, nj=nj)
    log.finish()
