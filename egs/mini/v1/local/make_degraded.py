#!/usr/bin/env python3
"""A degraded copy of a test data dir: noise at an SNR drawn from 0-10 dB and/or reverberation, seeded.

Usage: local/make_degraded.py [--noise-dir DIR]... [--rir-list FILE] [--kinds noise,reverb,noise+reverb]
                              [--snr-min 0] [--snr-max 10] [--seed 0] SRC_DIR DEST_DIR

e.g. local/make_degraded.py --noise-dir data/noise_synth --noise-dir data/babble \\
         --rir-list data/rirs_sim/rir_list data/test_open data/test_open_degraded

Each utterance of SRC_DIR gets one of the kinds at random (noise from one of the --noise-dir data dirs, e.g.
local/make_noise_sources.py's or `spkid prepare musan`'s; RIRs from the Kaldi --rir-list, else simulated)
and is written as DEST_DIR/wav/<utt>.wav under the same id, so SRC_DIR/trials (copied) applies unchanged.
DEST_DIR/utt2degradation: `<utt> <kind> <snr dB or -> <noise id or -> <rir id or ->`.
"""
import argparse
import logging
import sys

from spkid.augment.degrade import KINDS, degrade_data_dir
from spkid.errors import SpkidError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src_dir")
    parser.add_argument("dest_dir")
    parser.add_argument("--noise-dir", action="append", default=[])
    parser.add_argument("--rir-list", default=None)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--snr-min", type=float, default=0.0)
    parser.add_argument("--snr-max", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s (%(name)s) %(message)s")
    try:
        print(degrade_data_dir(args.src_dir, args.dest_dir, args.noise_dir, args.rir_list,
                               tuple(k for k in args.kinds.split(",") if k), (args.snr_min, args.snr_max), args.seed))
    except SpkidError as err:
        sys.exit(f"make_degraded.py: {err}")


if __name__ == "__main__":
    main()
