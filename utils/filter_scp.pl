#!/usr/bin/env python3
"""Usage: filter_scp.pl [--exclude] [-f FIELD] ID_LIST [IN...] > OUT   (as Kaldi's; reads stdin without IN)

Prints the input lines whose FIELD-th field (1-based, default 1) is the first field of a line of
ID_LIST ("-" is stdin); with --exclude, the lines whose field is not. Lines are copied verbatim (bytes).
"""
import sys

USAGE = __doc__.strip()


def main(args):
    exclude, field = False, 1
    while args and args[0] in ("--exclude", "-f", "-h", "--help"):
        if args[0] in ("-h", "--help"):
            print(USAGE, file=sys.stderr)
            return 0
        if args[0] == "--exclude":
            exclude, args = True, args[1:]
        else:
            if len(args) < 2 or not args[1].isdigit() or int(args[1]) < 1:
                print(f"filter_scp.pl: -f needs a positive field number\n{USAGE}", file=sys.stderr)
                return 1
            field, args = int(args[1]), args[2:]
    if len(args) < 1:
        print(USAGE, file=sys.stderr)
        return 1
    ids = set()
    try:
        handle = sys.stdin.buffer if args[0] == "-" else open(args[0], "rb")
    except OSError as err:
        print(f"filter_scp.pl: could not open id-list file {args[0]}: {err.strerror}", file=sys.stderr)
        return 1
    with handle:
        for line in handle:
            fields = line.split()
            if fields:
                ids.add(fields[0])
    out = sys.stdout.buffer
    for name in args[1:] or ["-"]:
        try:
            handle = sys.stdin.buffer if name == "-" else open(name, "rb")
        except OSError as err:
            print(f"filter_scp.pl: could not open {name}: {err.strerror}", file=sys.stderr)
            return 1
        with handle:
            for lineno, line in enumerate(handle, 1):
                fields = line.split()
                if len(fields) < field:
                    print(f"filter_scp.pl: {name}:{lineno}: line has fewer than {field} fields",
                          file=sys.stderr)
                    return 1
                if (fields[field - 1] in ids) != exclude:
                    out.write(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
