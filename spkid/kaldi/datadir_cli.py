"""Entry points of the Kaldi-style data-dir scripts in utils/ (`python3 -m spkid.kaldi.datadir_cli ...`).

Standard library only (no torch, no click), so utils/*.sh start fast under any python3 >= 3.9.
Messages go to stdout as Kaldi's scripts print them; errors to stderr as one line, exit status 1.
"""
from __future__ import annotations

import argparse
import sys

from spkid.errors import SpkidError

BOOL = {"true": True, "false": False}


def _bool(text: str) -> bool:
    if text not in BOOL:
        raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")
    return BOOL[text]


def _parser(prog: str, description: str, usage: str | None = None) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=description, usage=usage,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def validate_main(argv: list[str]) -> None:
    from spkid.kaldi.validate import check_data_dir

    p = _parser("validate_data_dir.sh", "Check a Kaldi data dir (sorted, unique, consistent tables). "
                "The --no-xxx options make xxx optional; it is still checked when present.")
    for name in ("feats", "wav", "text", "spk-sort"):
        p.add_argument(f"--no-{name}", action="store_true")
    p.add_argument("data")
    a = p.parse_args(argv)
    problems = check_data_dir(a.data, no_feats=a.no_feats, no_wav=a.no_wav, no_text=a.no_text,
                              no_spk_sort=a.no_spk_sort)
    for problem in problems:
        print(f"validate_data_dir.sh: {problem}", file=sys.stderr if problem.level == "error" else sys.stdout)
    if any(p.level == "error" for p in problems):
        raise SystemExit(1)
    print(f"validate_data_dir.sh: Successfully validated data-directory {a.data}")


def fix_main(argv: list[str]) -> None:
    from spkid.kaldi.datadir import fix_data_dir

    p = _parser("fix_data_dir.sh", "Sort the tables of a data dir and keep only the utterances present in "
                "all of them; originals go to DATA/.backup.")
    p.add_argument("--utt-extra-files", "--utt_extra_files", default="", metavar="'F1 F2'",
                   help="more utterance-keyed files to filter")
    p.add_argument("--spk-extra-files", "--spk_extra_files", default="", metavar="'F1 F2'",
                   help="more speaker-keyed files to filter")
    p.add_argument("data")
    a = p.parse_args(argv)
    fix_data_dir(a.data, a.utt_extra_files.split(), a.spk_extra_files.split(), log=print)


def split_data_main(argv: list[str]) -> None:
    from spkid.kaldi.datadir import split_data_dir

    p = _parser("split_data.sh", "Split DATA into DATA/splitN/{1..N} (DATA/splitNutt with --per-utt); by "
                "speaker so no speaker is in two parts, unless --per-utt. An up-to-date split is kept.")
    p.add_argument("--per-utt", action="store_true")
    p.add_argument("data")
    p.add_argument("num", type=int)
    a = p.parse_args(argv)
    split_data_dir(a.data, a.num, per_utt=a.per_utt)


def split_scp_main(argv: list[str]) -> None:
    from spkid.kaldi.split import split_scp

    usage = ("split_scp.pl [--utt2spk=UTT2SPK] IN OUT1 OUT2 ...\n"
             "   or: split_scp.pl -j NUM_JOBS JOB_ID [--one-based] [--utt2spk=UTT2SPK] IN [OUT]")
    p = _parser("split_scp.pl", "Split a table into parts with equal numbers of lines, or whole speakers "
                "with --utt2spk. With -j N k write only part k (0 <= k < N; 1 <= k <= N with "
                "--one-based) to OUT or stdout.", usage)
    p.add_argument("-j", nargs=2, type=int, metavar=("NUM_JOBS", "JOB_ID"))
    p.add_argument("--one-based", action="store_true")
    p.add_argument("--utt2spk")
    p.add_argument("files", nargs="+")
    a = p.parse_args(argv)
    if a.j is None:
        if len(a.files) < 2:
            p.error("need an input and at least one output")
        split_scp(a.files[0], a.files[1:], a.utt2spk)
        return
    num, job = a.j[0], a.j[1] - int(a.one_based)
    if num <= 0 or not 0 <= job < num or len(a.files) > 2:
        p.error(f"invalid job number/index '-j {a.j[0]} {a.j[1]}'" + (" --one-based" if a.one_based else ""))
    out = a.files[1] if len(a.files) == 2 else "-"
    split_scp(a.files[0], [out if k == job else "/dev/null" for k in range(num)], a.utt2spk, only=job)


def subset_main(argv: list[str]) -> None:
    from spkid.kaldi.datadir import subset_data_dir

    usage = ("subset_data_dir.sh [--speakers|--shortest|--first|--last|--per-spk|--random [--seed N]] "
             "SRCDIR NUM_UTT DESTDIR\n"
             "   or: subset_data_dir.sh --spk-list SPEAKER_LIST SRCDIR DESTDIR\n"
             "   or: subset_data_dir.sh --utt-list UTTERANCE_LIST SRCDIR DESTDIR")
    p = _parser("subset_data_dir.sh", "Write a data dir holding a subset of the utterances of SRCDIR.\n"
                "By default NUM_UTT utterances spread evenly over SRCDIR (as Kaldi's subset_scp.pl);\n"
                "--random: NUM_UTT random utterances (--seed); --speakers: random whole speakers until\n"
                "NUM_UTT utterances; --per-spk: NUM_UTT per speaker, evenly spaced; --first/--last;\n"
                "--shortest (by utt2dur or utt2num_frames); --spk-list/--utt-list: the ids listed.", usage)
    group = p.add_mutually_exclusive_group()
    for flag in ("speakers", "shortest", "first", "last", "per-spk", "random"):
        group.add_argument(f"--{flag}", action="store_true")
    group.add_argument("--spk-list")
    group.add_argument("--utt-list")
    p.add_argument("--seed", type=int, default=777)
    p.add_argument("args", nargs="+", metavar="SRCDIR [NUM_UTT] DESTDIR")
    a = p.parse_args(argv)
    by_list = a.spk_list is not None or a.utt_list is not None
    if len(a.args) != (2 if by_list else 3):
        p.error("wrong number of arguments")
    num = None
    if not by_list:
        try:
            num = int(a.args[1])
        except ValueError:
            p.error(f"NUM_UTT must be a number, got '{a.args[1]}'")
    subset_data_dir(a.args[0], a.args[-1], num, first=a.first, last=a.last, per_spk=a.per_spk,
                    speakers=a.speakers, shortest=a.shortest, random_pick=a.random, seed=a.seed,
                    utt_list=a.utt_list, spk_list=a.spk_list, log=print)


def combine_main(argv: list[str]) -> None:
    from spkid.kaldi.datadir import combine_data_dirs

    p = _parser("combine_data.sh", "Combine data dirs into DEST (then fix it with fix_data_dir.sh). An "
                "utterance id in two sources is an error; a table missing from a source is not combined.",
                "combine_data.sh [--extra-files 'F1 F2'] [--skip-fix true|false] DEST SRC1 SRC2 ...")
    p.add_argument("--extra-files", "--extra_files", default="", help="more utterance-keyed files")
    p.add_argument("--skip-fix", "--skip_fix", type=_bool, default=False)
    p.add_argument("dest")
    p.add_argument("srcs", nargs="+")
    a = p.parse_args(argv)
    print("combine_data.sh " + " ".join(argv))
    combine_data_dirs(a.dest, a.srcs, a.extra_files.split(), skip_fix=a.skip_fix, log=print)


# sub-command -> (entry point, the script it serves)
COMMANDS = {"validate": (validate_main, "validate_data_dir.sh"), "fix": (fix_main, "fix_data_dir.sh"),
            "split-data": (split_data_main, "split_data.sh"), "split-scp": (split_scp_main, "split_scp.pl"),
            "subset": (subset_main, "subset_data_dir.sh"), "combine": (combine_main, "combine_data.sh")}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python3 -m spkid.kaldi.datadir_cli {{{','.join(COMMANDS)}}} ARGS...", file=sys.stderr)
        raise SystemExit(1)
    try:
        COMMANDS[argv[0]][0](argv[1:])
    except SpkidError as err:
        print(f"{COMMANDS[argv[0]][1]}: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except SystemExit as ex:  # argparse usage errors exit 2; Kaldi scripts exit 1
        raise SystemExit(1 if ex.code not in (0, None) else 0) from None


if __name__ == "__main__":
    main()
