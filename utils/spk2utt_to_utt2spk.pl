#!/usr/bin/env python3
"""Usage: spk2utt_to_utt2spk.pl [SPK2UTT...] > utt2spk  (reads stdin without files), as Kaldi's.

Prints `<utt> <spk>` for each utterance of each speaker line, in input order. Works on bytes.
"""
import sys


def main(args):
    if any(a in ("-h", "--help") for a in args):
        print(__doc__.strip(), file=sys.stderr)
        return 0
    out = sys.stdout.buffer
    for name in args or ["-"]:
        try:
            handle = sys.stdin.buffer if name == "-" else open(name, "rb")
        except OSError as err:
            sys.stderr.write(f"spk2utt_to_utt2spk.pl: cannot open {name}: {err.strerror}\n")
            return 1
        with handle:
            for lineno, line in enumerate(handle, 1):
                fields = line.split()
                if len(fields) < 2:
                    sys.stderr.write(f"spk2utt_to_utt2spk.pl: {name}:{lineno}: invalid line in spk2utt file: "
                                     f"{line.decode(errors='replace').rstrip()!r}\n")
                    return 1
                for utt in fields[1:]:
                    out.write(utt + b" " + fields[0] + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
