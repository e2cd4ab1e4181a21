#!/usr/bin/env python3
"""Usage: utt2spk_to_spk2utt.pl [UTT2SPK...] > spk2utt  (reads stdin without files), as Kaldi's.

Each speaker's line lists its utterances in input order; speakers come in order of first appearance
(so a sorted utt2spk gives a sorted spk2utt). Works on bytes, as the perl original.
"""
import sys


def main(args):
    if any(a in ("-h", "--help") for a in args):
        print(__doc__.strip(), file=sys.stderr)
        return 0
    spk2utt = {}
    for name in args or ["-"]:
        try:
            handle = sys.stdin.buffer if name == "-" else open(name, "rb")
        except OSError as err:
            sys.stderr.write(f"utt2spk_to_spk2utt.pl: cannot open {name}: {err.strerror}\n")
            return 1
        with handle:
            for lineno, line in enumerate(handle, 1):
                fields = line.split()
                if len(fields) != 2:
                    sys.stderr.write(f"utt2spk_to_spk2utt.pl: {name}:{lineno}: invalid line in utt2spk file: "
                                     f"{line.decode(errors='replace').rstrip()!r}\n")
                    return 1
                spk2utt.setdefault(fields[1], []).append(fields[0])
    out = sys.stdout.buffer
    for spk, utts in spk2utt.items():
        out.write(spk + b" " + b" ".join(utts) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
