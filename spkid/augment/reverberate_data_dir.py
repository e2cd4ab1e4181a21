"""steps/data/reverberate_data_dir.py: Kaldi's reverberation (RIRs, isotropic and point-source noises) of a data dir.

A transcription of Kaldi's egs/wsj/s5/steps/data/reverberate_data_dir.py: same options, defaults, RIR/noise
list formats, probability smoothing, random calls (Python's `random` seeded with --random-seed) and wav.scp
lines, so the output equals Kaldi's for the same inputs; the lines pipe through `wav-reverberate`.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import re
import shlex
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
Reverberate a data directory with room impulse responses, optionally adding isotropic and point-source
noises, as Kaldi's steps/data/reverberate_data_dir.py.

Usage: reverberate_data_dir.py [options] <in-data-dir> <out-data-dir>
e.g. (Kaldi's VoxCeleb recipe, RIRS_NOISES from openslr.org/28):
  steps/data/reverberate_data_dir.py --rir-set-parameters "0.5, RIRS_NOISES/simulated_rirs/smallroom/rir_list" \\
      --rir-set-parameters "0.5, RIRS_NOISES/simulated_rirs/mediumroom/rir_list" \\
      --speech-rvb-probability 1 --pointsource-noise-addition-probability 0 \\
      --isotropic-noise-addition-probability 0 --num-replications 1 --utt-suffix reverb \\
      data/train data/train_reverb
(Kaldi's recipe also passes --source-sampling-rate 16000; RIRS_NOISES is 16 kHz already, and that
option needs sox.)

RIR list lines: --rir-id ID --room-id ROOM [--receiver-position-id --source-position-id --rt60 --drr --cte
--probability] <rxfilename>. Noise list lines: --noise-id ID --noise-type isotropic|point-source
[--bg-fg-type background|foreground] [--room-linkage ROOM] [--probability] <rxfilename>.

Supported: all of Kaldi's options, plus --utt-suffix (spkid: ids become ID-SUFFIX, as the recipe's
`utils/copy_data_dir.sh --utt-suffix -reverb`). reco2dur is computed when missing, as Kaldi does.
--source-sampling-rate writes Kaldi's `sox RIR -r RATE -t wav - |` lines: sox must be installed to read them.
Files carried over: utt2spk (speaker ids get the prefix too, as Kaldi), utt2uniq, text, segments,
reco2file_and_channel, vad.scp; then spk2utt and utils/fix_data_dir.sh.
"""


def get_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="reverberate_data_dir.py", description=DESCRIPTION, formatter_class=HelpFormatter)
    p.add_argument("--rir-set-parameters", action="append", required=True, dest="rir_set_para_array",
                   help="An RIR set: '[mixture_weight,] rir_list_file', e.g. '0.3, rir_list' (repeatable). Sets "
                   "without a weight share the remaining probability mass.")
    p.add_argument("--noise-set-parameters", action="append", default=None, dest="noise_set_para_array",
                   help="A noise set: '[mixture_weight,] noise_list_file' (repeatable).")
    p.add_argument("--num-replications", type=int, dest="num_replicas", default=1,
                   help="Number of replicate to generated for the data")
    p.add_argument("--foreground-snrs", dest="foreground_snr_string", default="20:10:0",
                   help="When foreground noises are being added the script will iterate through these SNRs.")
    p.add_argument("--background-snrs", dest="background_snr_string", default="20:10:0",
                   help="When background noises are being added the script will iterate through these SNRs.")
    p.add_argument("--prefix", default=None,
                   help="This prefix will modified for each reverberated copy, by adding additional affixes.")
    p.add_argument("--speech-rvb-probability", type=float, default=1.0,
                   help="Probability of reverberating a speech signal, e.g. 0 <= p <= 1")
    p.add_argument("--pointsource-noise-addition-probability", type=float, default=1.0,
                   help="Probability of adding point-source noises, e.g. 0 <= p <= 1")
    p.add_argument("--isotropic-noise-addition-probability", type=float, default=1.0,
                   help="Probability of adding isotropic noises, e.g. 0 <= p <= 1")
    p.add_argument("--rir-smoothing-weight", type=float, default=0.3,
                   help="Weight of a uniform distribution mixed into the RIR probabilities")
    p.add_argument("--noise-smoothing-weight", type=float, default=0.3,
                   help="Weight of a uniform distribution mixed into the noise probabilities")
    p.add_argument("--max-noises-per-minute", type=int, default=2,
                   help="Maximum number of point-source noises added per minute of recording")
    p.add_argument("--random-seed", type=int, default=0,
                   help="seed to be used in the randomization of impulses and noises")
    p.add_argument("--shift-output", choices=["true", "false"], default="true",
                   help="If true, the reverberated waveform will be shifted by the amount of the peak position "
                   "of the RIR")
    p.add_argument("--source-sampling-rate", type=int, default=None,
                   help="If set, RIRs and noises are resampled to this rate (with sox).")
    p.add_argument("--include-original-data", choices=["true", "false"], default="false",
                   help="If true, the output data includes one copy of the original data")
    p.add_argument("--utt-suffix", default=None,
                   help="spkid: append -SUFFIX to the new utterance and recording ids (e.g. reverb).")
    p.add_argument("input_dir", help="Input data directory")
    p.add_argument("output_dir", help="Output data directory")
    args = p.parse_args(argv)
    if args.prefix is None and (args.num_replicas > 1 or args.include_original_data == "true"):
        args.prefix = "rvb"
    if not args.num_replicas > 0:
        raise SpkidError("--num-replications cannot be non-positive")
    for name in ("speech_rvb_probability", "pointsource_noise_addition_probability",
                 "isotropic_noise_addition_probability", "rir_smoothing_weight", "noise_smoothing_weight"):
        if not 0 <= getattr(args, name) <= 1:
            raise SpkidError(f"--{name.replace('_', '-')} must be between 0 and 1")
    if args.max_noises_per_minute < 0:
        raise SpkidError("--max-noises-per-minute cannot be negative")
    if args.source_sampling_rate is not None and args.source_sampling_rate <= 0:
        raise SpkidError("--source-sampling-rate cannot be non-positive")
    return args


class Item:
    """An RIR, noise, room or list set: the attributes Kaldi's script gives it, and a probability."""

    def __init__(self, **kw):
        self.probability = None
        self.__dict__.update(kw)


class CyclicIterator:
    """Kaldi's list_cyclic_iterator: shuffled once, then cycled."""

    def __init__(self, items: list, rng: random.Random):
        self.items, self.index = items, 0
        rng.shuffle(self.items)

    def __next__(self):
        item = self.items[self.index]
        self.index = (self.index + 1) % len(self.items)
        return item


def pick_item_with_probability(x, rng: random.Random):
    """An item drawn with its `probability` (a dict: keys sorted then shuffled, as Kaldi)."""
    if isinstance(x, dict):
        keylist = sorted(x)
        rng.shuffle(keylist)
        plist = [x[k] for k in keylist]
    else:
        plist = x
    p = rng.uniform(0, sum(item.probability for item in plist))
    accumulate_p = 0
    for item in plist:
        if accumulate_p + item.probability >= p:
            return item
        accumulate_p += item.probability
    raise SpkidError("internal error: probabilities do not add up")


def smooth_probability_distribution(set_list: list, smoothing_weight: float = 0.0, target_sum: float = 1.0) -> list:
    """Unspecified probabilities share the remaining mass; mix with uniform; normalise to target_sum."""
    if set_list:
        unspecified = sum(1 for item in set_list if item.probability is None)
        accumulated = sum(item.probability for item in set_list if item.probability is not None)
        uniform = (1 - accumulated) / unspecified if unspecified > 0 and accumulated < 1 else 0
        for item in set_list:
            if item.probability is None:
                item.probability = uniform
            else:
                item.probability = (1 - smoothing_weight) * item.probability + smoothing_weight * uniform
        total = sum(item.probability for item in set_list)
        if not total > 0:
            raise SpkidError("all probabilities are zero")
        for item in set_list:
            item.probability = item.probability / total * target_sum
    return set_list


def parse_set_parameter_strings(set_para_array: list[str]) -> list[Item]:
    sets = []
    for set_para in set_para_array:
        parts = set_para.split(",")
        item = Item(filename=parts[-1].strip())
        if len(parts) == 2:
            try:
                item.probability = float(parts[0])
            except ValueError:
                raise SpkidError(f"bad set parameters '{set_para}': expected '[weight,] list_file'") from None
        if not Path(item.filename).is_file():
            raise SpkidError(f"{item.filename} not found")
        sets.append(item)
    return smooth_probability_distribution(sets)


def _list_parser(kind: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"{kind} list line", add_help=False, exit_on_error=False)
    if kind == "rir":
        parser.add_argument("--rir-id", required=True)
        parser.add_argument("--room-id", required=True)
        for name in ("--receiver-position-id", "--source-position-id"):
            parser.add_argument(name, default=None)
        for name in ("--rt60", "--drr", "--cte", "--probability"):
            parser.add_argument(name, type=float, default=None)
        parser.add_argument("rspecifier")
    else:
        parser.add_argument("--noise-id", required=True)
        parser.add_argument("--noise-type", required=True, choices=["isotropic", "point-source"])
        parser.add_argument("--bg-fg-type", default="background", choices=["background", "foreground"])
        parser.add_argument("--room-linkage", default=None)
        parser.add_argument("--probability", type=float, default=None)
        parser.add_argument("rspecifier")
    return parser


def parse_list_file(path: str, kind: str, sampling_rate: int | None) -> list[Item]:
    """The RIRs or noises of a list file; --source-sampling-rate wraps them in Kaldi's sox commands."""
    parser, items = _list_parser(kind), []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise SpkidError(f"{path}: cannot read the {kind} list ({getattr(err, 'strerror', None) or err})") from None
    for lineno, line in enumerate(lines, 1):
        try:
            ns = parser.parse_args(shlex.split(line.strip()))
        except (argparse.ArgumentError, ValueError, SystemExit) as err:
            raise SpkidError(f"{path}:{lineno}: bad {kind} list line ({err})") from None
        item = Item(**vars(ns))
        missing = _missing_file(item.rspecifier)
        if missing is not None:
            raise SpkidError(f"{path}:{lineno}: {kind} file '{missing}' does not exist")
        if sampling_rate is not None:
            if len(item.rspecifier.split()) == 1:
                item.rspecifier = f"sox {item.rspecifier} -r {sampling_rate} -t wav - |"
            else:
                item.rspecifier = f"{item.rspecifier} sox -t wav - -r {sampling_rate} -t wav - |"
        items.append(item)
    if not items:
        raise SpkidError(f"{path}: the {kind} list is empty")
    return items


def _missing_file(rspecifier: str) -> str | None:
    """The file an rxfilename names when it does not exist (a path, or the archive of `file.ark:offset`);
    None for files that exist and for pipes (`cmd |`), which only running them checks."""
    if rspecifier.rstrip().endswith("|") or rspecifier == "-":
        return None
    if os.path.exists(rspecifier):
        return None
    m = re.match(r"^(.+):(\d+)$", rspecifier)
    if m and os.path.isfile(m.group(1)):
        return None
    return rspecifier


def parse_rir_list(set_para_array, smoothing_weight, sampling_rate=None) -> list[Item]:
    rir_list = []
    for rir_set in parse_set_parameter_strings(set_para_array):
        current = parse_list_file(rir_set.filename, "rir", sampling_rate)
        rir_list += smooth_probability_distribution(current, smoothing_weight, rir_set.probability)
    return rir_list


def make_room_dict(rir_list: list[Item]) -> dict[str, Item]:
    rooms: dict[str, Item] = {}
    for rir in rir_list:
        rooms.setdefault(rir.room_id, Item(rir_list=[])).rir_list.append(rir)
    for room in rooms.values():
        room.probability = sum(rir.probability for rir in room.rir_list)
    return rooms


def parse_noise_list(set_para_array, smoothing_weight, sampling_rate=None) -> tuple[list[Item], dict]:
    pointsource, iso = [], {}
    for noise_set in parse_set_parameter_strings(set_para_array):
        current_pointsource = []
        for noise in parse_list_file(noise_set.filename, "noise", sampling_rate):
            if noise.noise_type == "isotropic":
                if noise.room_linkage is None:
                    raise SpkidError("--room-linkage must be specified if --noise-type is isotropic")
                iso.setdefault(noise.room_linkage, []).append(noise)
            else:
                current_pointsource.append(noise)
        pointsource += smooth_probability_distribution(current_pointsource, smoothing_weight, noise_set.probability)
    pointsource = smooth_probability_distribution(pointsource, smoothing_weight, 1.0)
    iso = {room: smooth_probability_distribution(noises) for room, noises in iso.items()}
    return pointsource, iso


def _noise_io(rspecifier: str, command: str) -> str:
    if len(rspecifier.split()) == 1:
        return f"{command} {rspecifier} - |"
    return f"{rspecifier} {command} - - |"


def generate_reverberation_opts(room_dict, pointsource_noise_list, iso_noise_dict, foreground_snrs,
                                background_snrs, args, speech_dur, max_noises_recording, rng) -> str:
    """The wav-reverberate options for one recording (Kaldi's generate_reverberation_opts)."""
    opts = ""
    noise_io, start_times, snrs = [], [], []
    room = pick_item_with_probability(room_dict, rng)
    speech_rir = pick_item_with_probability(room.rir_list, rng)
    if rng.random() < args.speech_rvb_probability:
        opts += f'--impulse-response="{speech_rir.rspecifier}" '
    rir_iso_noise_list = iso_noise_dict.get(speech_rir.room_id, [])
    if rir_iso_noise_list and rng.random() < args.isotropic_noise_addition_probability:
        noise = pick_item_with_probability(rir_iso_noise_list, rng)
        noise_io.append(_noise_io(noise.rspecifier, f"wav-reverberate --duration={speech_dur}"))
        start_times.append(0)
        snrs.append(next(background_snrs))
    if (pointsource_noise_list and rng.random() < args.pointsource_noise_addition_probability
            and max_noises_recording >= 1):
        for _ in range(rng.randint(1, max_noises_recording)):
            noise = pick_item_with_probability(pointsource_noise_list, rng)
            noise_rir = pick_item_with_probability(room.rir_list, rng)
            if noise.bg_fg_type == "background":
                command = f'wav-reverberate --impulse-response="{noise_rir.rspecifier}" --duration={speech_dur}'
                start_times.append(0)
                snrs.append(next(background_snrs))
            else:
                command = f'wav-reverberate --impulse-response="{noise_rir.rspecifier}" '
                start_times.append(round(rng.random() * speech_dur, 2))
                snrs.append(next(foreground_snrs))
            noise_io.append(_noise_io(noise.rspecifier, command))
    if noise_io:
        opts += f"--additive-signals='{','.join(noise_io)}' "
        opts += f"--start-times='{','.join(str(x) for x in start_times)}' "
        opts += f"--snrs='{','.join(str(x) for x in snrs)}' "
    return opts


def main(argv: list[str]) -> None:
    args = get_args(argv)
    rng = random.Random(args.random_seed)
    rir_list = parse_rir_list(args.rir_set_para_array, args.rir_smoothing_weight, args.source_sampling_rate)
    pointsource_noise_list, iso_noise_dict = [], {}
    if args.noise_set_para_array is not None:
        pointsource_noise_list, iso_noise_dict = parse_noise_list(
            args.noise_set_para_array, args.noise_smoothing_weight, args.source_sampling_rate)
    room_dict = make_room_dict(rir_list)
    input_dir, output_dir = Path(args.input_dir), Path(args.output_dir)
    lists = [p.split(",")[-1].strip() for p in args.rir_set_para_array + (args.noise_set_para_array or [])]
    check_output_dir(output_dir, {"input data dir": input_dir, **{f"list {p}": p for p in lists}})
    include_original = args.include_original_data == "true"
    wav_scp = dict(wav_scp_entries(input_dir / "wav.scp"))
    durations = reco2dur(input_dir)
    fg_snrs = CyclicIterator([float(x) for x in parse_colon_list(args.foreground_snr_string, "--foreground-snrs")],
                             rng)
    bg_snrs = CyclicIterator([float(x) for x in parse_colon_list(args.background_snr_string, "--background-snrs")],
                             rng)

    def new_id(utt: str, copy: int, suffix: str | None = args.utt_suffix) -> str:
        """Kaldi's get_new_id (PREFIXCOPY-ID), then -SUFFIX (not for speaker ids, as copy_data_dir.sh)."""
        utt = f"{args.prefix}{copy}-{utt}" if args.prefix is not None else utt
        return f"{utt}-{suffix}" if suffix else utt

    copies = range(0 if include_original else 1, args.num_replicas + 1)
    corrupted = {}
    for i in copies:
        for reco in sorted(wav_scp):
            pipe = wav_scp[reco]
            if len(pipe.split()) == 1:
                pipe = f"cat {pipe} |"
            if reco not in durations:
                raise SpkidError(f"{input_dir}/reco2dur: no duration for recording '{reco}'")
            speech_dur = durations[reco]
            max_noises = math.floor(args.max_noises_per_minute * speech_dur / 60)
            opts = generate_reverberation_opts(room_dict, pointsource_noise_list, iso_noise_dict, fg_snrs, bg_snrs,
                                               args, speech_dur, max_noises, rng)
            if opts == "" or i == 0:
                corrupted[new_id(reco, i)] = pipe
            else:
                corrupted[new_id(reco, i)] = f"{pipe} wav-reverberate --shift-output={args.shift_output} {opts} - - |"
    write_copies(input_dir, output_dir, corrupted, new_id, list(copies))


def write_copies(input_dir: Path, final_dir: Path, wav_scp: dict[str, str], new_id, copies: list[int]) -> None:
    """The output data dir, written in a staged folder that replaces `final_dir` once complete."""
    with staged_output(final_dir) as output_dir:
        _write_tables(input_dir, output_dir, wav_scp, new_id, copies)
        finish_data_dir(output_dir, final_dir)


def _write_tables(input_dir: Path, output_dir: Path, wav_scp: dict[str, str], new_id, copies: list[int]) -> None:
    from spkid.kaldi.tables import read_text_table, write_table

    write_table(output_dir / "wav.scp", wav_scp)
    for name, fields in (("utt2spk", (0, 1)), ("utt2uniq", (0,)), ("text", (0,)), ("segments", (0, 1)),
                         ("reco2file_and_channel", (0, 1)), ("vad.scp", (0,))):
        if (input_dir / name).is_file():
            parts = [output_dir / f".{name}.{i}" for i in copies]
            for i, part in zip(copies, parts):
                copy_with_new_ids(input_dir / name, part, lambda x, i=i: new_id(x, i), fields,
                                  (lambda x, i=i: new_id(x, i, None)) if name == "utt2spk" else None)
            write_table(output_dir / name, {k: v for part in parts for k, v in read_text_table(part).items()})
            for part in parts:
                part.unlink()
    if not (input_dir / "utt2uniq").is_file():
        utts = read_text_table(input_dir / "utt2spk")
        write_table(output_dir / "utt2uniq", {new_id(u, i): u for i in copies for u in utts})


if __name__ == "__main__":
    raise SystemExit(run_main(main, None))
