#!/usr/bin/env python3
"""Kaldi's steps/data/augment_data_dir.py (additive noise, music, babble): see --help.
The work is done by spkid.augment.augment_data_dir."""
import os
import sys

try:
    import spkid  # noqa: F401
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", ".."))
from spkid.augment.augment_data_dir import main  # noqa: E402
from spkid.augment.kaldi_datadir import run_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main, None))
