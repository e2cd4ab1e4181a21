#!/usr/bin/env python3
"""split_scp.pl [--utt2spk=UTT2SPK] IN OUT1 OUT2 ...  |  split_scp.pl -j N k [--one-based] IN [OUT]

Kaldi's split_scp.pl: split a table into parts with equal numbers of lines, or by whole speakers with
--utt2spk (balanced as Kaldi does). The logic is spkid.kaldi.split (standard library only).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
from spkid.kaldi.datadir_cli import main  # noqa: E402

if __name__ == "__main__":
    main(["split-scp", *sys.argv[1:]])
