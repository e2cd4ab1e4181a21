"""steps/data/augment_data_dir.py: Kaldi's additive-noise augmentation of a data dir (noise, music, babble).

Same options, defaults, random choices (Python's `random` seeded with --random-seed, called in Kaldi's
order) and wav.scp lines as Kaldi's egs/wsj/s5/steps/data/augment_data_dir.py, so the output equals
Kaldi's for the same inputs; the lines pipe through `wav-reverberate` (Kaldi's, or utils/wav-reverberate).
"""
from __future__ import annotations

import argparse
import random
from pathlib import Path

from spkid.augment.kaldi_datadir import (
    HelpFormatter,
    check_output_dir,
    copy_with_new_ids,
    finish_data_dir,
    parse_colon_list,
    reco2dur,
    run_main,
    staged_output,
    wav_scp_entries,
)
from spkid.errors import SpkidError

DESCRIPTION = """\
Augment a data directory with additive noises, as Kaldi's steps/data/augment_data_dir.py.
Background noises (--bg-noise-dir) cover the whole recording (repeated as needed, several may overlap,
e.g. babble); foreground noises (--fg-noise-dir) are added one after another, --fg-interval seconds apart.
Each SNR and noise is drawn at random; the new wav.scp pipes the audio through wav-reverberate.

Usage: augment_data_dir.py [options] <in-data-dir> <out-data-dir>
e.g. (Kaldi's VoxCeleb recipe):
  steps/data/augment_data_dir.py --utt-suffix noise --fg-interval 1 --fg-snrs 15:10:5:0 \\
      --fg-noise-dir data/musan_noise data/train data/train_noise
  steps/data/augment_data_dir.py --utt-suffix music --bg-snrs 15:10:8:5 --num-bg-noises 1 \\
      --bg-noise-dir data/musan_music data/train data/train_music
  steps/data/augment_data_dir.py --utt-suffix babble --bg-snrs 20:17:15:13 --num-bg-noises 3:4:5:6:7 \\
      --bg-noise-dir data/musan_speech data/train data/train_babble

Supported: all of Kaldi's options. Differences: reco2dur of the input and noise dirs is computed (and
written) when missing, where Kaldi fails; SNRs may be non-integers; errors are one line, exit status 1.
Files carried over with new ids: reco2dur utt2dur utt2spk utt2lang utt2num_frames text segments vad.scp
reco2file_and_channel spk2gender utt2uniq (created when missing); then spk2utt and utils/fix_data_dir.sh.
"""


def get_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="augment_data_dir.py", description=DESCRIPTION,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--fg-snrs", dest="fg_snr_str", default="20:10:0",
                        help="When foreground noises are being added, the script will iterate through these SNRs.")
    parser.add_argument("--bg-snrs", dest="bg_snr_str", default="20:10:0",
                        help="When background noises are being added, the script will iterate through these SNRs.")
    parser.add_argument("--num-bg-noises", dest="num_bg_noises", default="1",
                        help="Numbers of overlapping background noises to choose from, e.g. 1:2:3.")
    parser.add_argument("--fg-interval", dest="fg_interval", type=int, default=0,
                        help="Number of seconds between the end of one foreground noise and the beginning of "
                        "the next.")
    parser.add_argument("--utt-suffix", dest="utt_suffix", default=None, help="Suffix added to utterance IDs.")
    parser.add_argument("--utt-prefix", dest="utt_prefix", default=None, help="Prefix added to utterance IDs.")
    parser.add_argument("--random-seed", dest="random_seed", type=int, default=123, help="Random seed.")
    parser.add_argument("--modify-spk-id", dest="modify_spk_id", default="false", choices=["true", "false"],
                        help="Add the prefix or suffix to the speaker ids too (ASR); speaker ids are "
                        "otherwise left unmodified.")
    parser.add_argument("--bg-noise-dir", dest="bg_noise_dir", help="Background noise data directory")
    parser.add_argument("--fg-noise-dir", dest="fg_noise_dir", help="Foreground noise data directory")
    parser.add_argument("input_dir", help="Input data directory")
    parser.add_argument("output_dir", help="Output data directory")
    args = parser.parse_args(argv)
    if args.utt_suffix is not None and args.utt_prefix is not None:
        raise SpkidError("Trying to add both prefix and suffix. Choose either of them")
    if args.fg_interval < 0:
        raise SpkidError("--fg-interval must be 0 or greater")
    if args.bg_noise_dir is None and args.fg_noise_dir is None:
        raise SpkidError("Either --fg-noise-dir or --bg-noise-dir must be specified")
    return args


def new_id_function(suffix: str | None, prefix: str | None):
    """Kaldi's get_new_id: `utt-suffix` or `prefix-utt` (unchanged when neither or empty)."""
    if suffix:
        return lambda utt: f"{utt}-{suffix}"
    if prefix:
        return lambda utt: f"{prefix}-{utt}"
    return lambda utt: utt


def augment_wav(wav: str, dur: float, fg_snrs: list, bg_snrs: list, fg_noise_utts: list[str],
                bg_noise_utts: list[str], noise_wavs: dict[str, str], noise2dur: dict[str, float], interval: int,
                num_opts: list[int], rng: random.Random) -> str:
    """The corrupted wav.scp value of one recording (Kaldi's augment_wav, same random calls)."""
    dur_str = str(dur)
    snrs, noises, start_times = [], [], []
    tot_noise_dur = 0  # an int until a duration is added: the first start time prints as 0, as Kaldi's
    if bg_noise_utts:
        for _ in range(rng.choice(num_opts)):
            noise_utt = rng.choice(bg_noise_utts)
            noises.append(f'wav-reverberate --duration={dur_str} "{noise_wavs[noise_utt]}" - |')
            snrs.append(rng.choice(bg_snrs))
            start_times.append(0)
    if fg_noise_utts:
        while tot_noise_dur < dur:
            noise_utt = rng.choice(fg_noise_utts)
            snrs.append(rng.choice(fg_snrs))
            noise_dur = noise2dur.get(noise_utt)
            if noise_dur is None or not noise_dur > 0:
                raise SpkidError(f"foreground noise '{noise_utt}' has no positive duration in its reco2dur")
            start_times.append(tot_noise_dur)
            tot_noise_dur += noise_dur + interval
            noises.append(noise_wavs[noise_utt])
    opts = (f"--additive-signals='{','.join(noises).strip()}' "
            f"--start-times='{','.join(str(t) for t in start_times)}' --snrs='{','.join(str(s) for s in snrs)}'")
    if wav.strip()[-1] != "|":
        return f"wav-reverberate --shift-output=true {opts} {wav} - |"
    return f"{wav} wav-reverberate --shift-output=true {opts} - - |"


def main(argv: list[str]) -> None:
    args = get_args(argv)
    fg_snrs = parse_colon_list(args.fg_snr_str, "--fg-snrs")
    bg_snrs = parse_colon_list(args.bg_snr_str, "--bg-snrs")
    num_bg_noises = parse_colon_list(args.num_bg_noises, "--num-bg-noises", int)
    if any(n < 0 for n in num_bg_noises):
        raise SpkidError(f"--num-bg-noises: expected numbers of noises (0 or more), got '{args.num_bg_noises}'")
    if args.bg_noise_dir and max(num_bg_noises) == 0:
        raise SpkidError(f"--num-bg-noises {args.num_bg_noises} adds none of the noises of --bg-noise-dir "
                         f"{args.bg_noise_dir}: the copies would be clean")
    input_dir, output_dir = Path(args.input_dir), Path(args.output_dir)
    check_output_dir(output_dir, {"input data dir": input_dir, **({"--bg-noise-dir": args.bg_noise_dir}
                                                                 if args.bg_noise_dir else {}),
                                  **({"--fg-noise-dir": args.fg_noise_dir} if args.fg_noise_dir else {})})
    bg_entries = noise_list(args.bg_noise_dir, "--bg-noise-dir") if args.bg_noise_dir else []
    fg_entries = noise_list(args.fg_noise_dir, "--fg-noise-dir") if args.fg_noise_dir else []
    durations = reco2dur(input_dir)
    noise_wavs: dict[str, str] = {}
    noise2dur: dict[str, float] = {}
    bg_noise_utts = [u for u, _ in bg_entries]
    fg_noise_utts = [u for u, _ in fg_entries]
    if args.bg_noise_dir:
        noise_wavs.update(bg_entries)
        noise2dur.update(reco2dur(args.bg_noise_dir))
    if args.fg_noise_dir:
        noise_wavs.update(fg_entries)
        noise2dur.update(reco2dur(args.fg_noise_dir))
    rng = random.Random(args.random_seed)
    new_id = new_id_function(args.utt_suffix, args.utt_prefix)
    new_wav_scp = {}
    for reco, wav in wav_scp_entries(input_dir / "wav.scp"):
        if reco not in durations:
            raise SpkidError(f"{input_dir}/reco2dur: no duration for recording '{reco}'")
        new_wav_scp[new_id(reco)] = augment_wav(wav, durations[reco], fg_snrs, bg_snrs, fg_noise_utts,
                                                bg_noise_utts, noise_wavs, noise2dur, args.fg_interval,
                                                num_bg_noises, rng)
    write_output(input_dir, output_dir, new_wav_scp, new_id, args.modify_spk_id == "true")


def noise_list(noise_dir: str, option: str) -> list[tuple[str, str]]:
    """The recordings of a noise dir's wav.scp; none is an error (the copies would have no noise)."""
    entries = wav_scp_entries(Path(noise_dir) / "wav.scp")
    if not entries:
        raise SpkidError(f"{option} {noise_dir}: its wav.scp lists no noise; the copies would have none")
    return entries


def write_output(input_dir: Path, final_dir: Path, new_wav_scp: dict[str, str], new_id,
                 modify_spk_id: bool) -> None:
    """The output data dir, written in a staged folder that replaces `final_dir` once complete."""
    with staged_output(final_dir) as output_dir:
        _write_tables(input_dir, output_dir, new_wav_scp, new_id, modify_spk_id)
        finish_data_dir(output_dir, final_dir)


def _write_tables(input_dir: Path, output_dir: Path, new_wav_scp: dict[str, str], new_id,
                  modify_spk_id: bool) -> None:
    from spkid.kaldi.tables import read_text_table, write_table

    write_table(output_dir / "wav.scp", new_wav_scp)
    for name, fields in (("reco2dur", (0,)), ("utt2dur", (0,)), ("utt2spk", (0, 1) if modify_spk_id else (0,)),
                         ("utt2lang", (0,)), ("utt2num_frames", (0,)), ("text", (0,)), ("segments", (0, 1)),
                         ("vad.scp", (0,)), ("reco2file_and_channel", (0, 1))):
        copy_with_new_ids(input_dir / name, output_dir / name, new_id, fields)
    copy_with_new_ids(input_dir / "spk2gender", output_dir / "spk2gender",
                      new_id if modify_spk_id else (lambda x: x))
    if (input_dir / "utt2uniq").is_file():
        copy_with_new_ids(input_dir / "utt2uniq", output_dir / "utt2uniq", new_id)
    else:
        write_table(output_dir / "utt2uniq", {new_id(u): u for u in read_text_table(input_dir / "utt2spk")})


if __name__ == "__main__":
    raise SystemExit(run_main(main, None))
