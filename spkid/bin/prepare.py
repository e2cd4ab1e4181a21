"""spkid prepare: a corpus -> lhotse manifests and Kaldi data dirs, through lhotse's own recipes."""
from __future__ import annotations

import click

CORPUS_NAMES = ("librispeech", "voxceleb1", "voxceleb2", "aidatatang_200zh", "magicdata", "vctk", "musan",
                "rirs_noises")


def _split_parts(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[str] | None:
    parts = [p for item in value for p in item.replace(",", " ").split()]
    return parts or None


@click.command("prepare")
@click.argument("corpus", type=click.Choice(CORPUS_NAMES))
@click.option("--corpus-dir", required=True, metavar="DIR",
              help="The corpus as unpacked (with --download: where to download and unpack it).")
@click.option("--output-dir", required=True, metavar="DIR",
              help="Writes DIR/manifests/<corpus>_{recordings,supervisions,cuts}_<part>.jsonl.gz and the "
                   "data dirs DIR/<corpus>_<part>.")
@click.option("--parts", multiple=True, callback=_split_parts, metavar="P[,P...]",
              help="Parts to prepare (repeatable or comma-separated) [default: see below].")
@click.option("--download", is_flag=True, help="Download and unpack the corpus first (lhotse's download_*).")
@click.option("--mirror", default=None, metavar="URL",
              help="--download from here: an OpenSLR mirror's resources URL (librispeech, aidatatang_200zh, "
                   "magicdata), the archive's URL (vctk, musan, rirs_noises), or the trial lists' folder (voxceleb1).")
@click.option("--nj", "num_jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Parallel jobs reading the audio headers (librispeech, voxceleb).")
@click.option("--mic", type=click.Choice(["mic1", "mic2"]), default=None,
              help="vctk 0.92 only: which microphone's recordings [default: mic2, as lhotse].")
@click.option("--use-vocals", type=click.Choice(["true", "false"]), default=None,
              help="musan only: keep music with vocals [default: true, as Kaldi's make_musan.sh].")
@click.option("--force", is_flag=True, help="Prepare parts again even when their outputs exist.")
def main(corpus: str, corpus_dir: str, output_dir: str, parts: list[str] | None, download: bool,
         mirror: str | None, num_jobs: int, mic: str | None, use_vocals: str | None, force: bool) -> None:
    """Prepare CORPUS with lhotse's recipe: manifests and a Kaldi data dir per part.

    Each data dir has wav.scp, utt2spk, spk2utt, utt2dur (+ spk2gender when known, segments when an
    utterance is part of a recording) and passes validate-data-dir. Speaker ids are prefixed with the
    corpus name (voxceleb1_id10001) and utterance ids start with their speaker id
    (voxceleb1_id10001-1zcIwhmdeo4-00001), so corpora combine without clashes (musan and rirs_noises
    keep Kaldi's ids, the file names, each recording its own speaker). Parts already prepared
    are skipped; outputs appear only when complete. Missing or malformed corpus files are an error
    naming the file and where lhotse expects it.

    \b
    Corpora, parts [default] and --corpus-dir layout:
      librispeech       train-clean-100 train-clean-360 train-other-500 dev-clean dev-other
                        test-clean test-other [those present]
                        DIR/<part>/<spk>/<chapter>/<spk>-<chapter>.trans.txt + .flac, SPEAKERS.TXT
      voxceleb1         dev test all [dev,test]: DIR/vox1_meta.csv, DIR/wav/<spk>/<video>/<utt>.wav
      voxceleb2         dev test all [dev,test]: DIR/vox2_meta.csv, DIR/{dev/aac,aac}/<spk>/<video>/
                        <utt>.m4a (needs ffmpeg; wav.scp gets ffmpeg pipes)
      aidatatang_200zh  train dev test [all three]: DIR/aidatatang_200zh/transcript/
                        aidatatang_200_zh_transcript.txt, .../corpus/<part>/<spk>/<utt>.wav
      magicdata         train dev test [all three]: DIR/<part>/TRANS.txt, DIR/<part>/<spk>/<utt>.wav
      vctk              all: DIR/speaker-info.txt, DIR/txt/<spk>/*.txt, DIR/wav48/<spk>/*.wav (0.80)
                        or DIR/wav48_silence_trimmed/<spk>/*_mic{1,2}.flac (0.92)
      musan             noise music speech [all]: DIR/{noise,music,speech}/<source>/*.wav,
                        DIR/music/<source>/ANNOTATIONS -> data dirs musan_<part> (each recording its
                        own speaker, reco2dur) for steps/data/augment_data_dir.py
      rirs_noises       sim_rir real_rir iso_noise point_noise [all]: DIR/simulated_rirs/<size>room/,
                        DIR/real_rirs_isotropic_noises/, DIR/pointsource_noises/, each with the
                        corpus's rir_list / noise_list -> data dirs rirs_noises_<part> holding those
                        lists with absolute paths (sim_rir: also smallroom_rir_list, ...) for
                        steps/data/reverberate_data_dir.py --rir-set-parameters/--noise-set-parameters

    \b
    Example:
      spkid prepare voxceleb1 --corpus-dir /corpora/VoxCeleb1 --output-dir data --parts all
      spkid prepare librispeech --corpus-dir /corpora/LibriSpeech --output-dir data \\
          --parts train-other-500,test-clean --nj 8
      spkid prepare magicdata --download --corpus-dir /corpora --output-dir data
      spkid prepare musan --download --corpus-dir /corpora --output-dir data
      spkid prepare rirs_noises --download --corpus-dir /corpora --output-dir data --parts sim_rir
    """
    from spkid.recipes.prepare import prepare_corpus

    options = {"mic": mic} if mic else {}
    if use_vocals:
        options["use_vocals"] = use_vocals == "true"
    dirs = prepare_corpus(corpus, corpus_dir, output_dir, parts=parts, download=download, mirror=mirror,
                          num_jobs=num_jobs, force=force, **options)
    for path in dirs:
        click.echo(str(path))
