#!/usr/bin/env python3
"""Augmentation sources without a download (stand-ins for MUSAN and RIRS_NOISES), seeded.

Usage: local/make_noise_sources.py [--seed S] [--rate R] [--noises N] [--rirs M] [--babble-from DATA_DIR]
                                   [--babble K] OUT_DIR

Writes OUT_DIR/noise_synth (N white/pink/brown noises, 2-6 s, wavs under it), OUT_DIR/rirs_sim (M simulated
RIRs and OUT_DIR/rirs_sim/rir_list) and, with --babble-from, OUT_DIR/babble (K recordings of DATA_DIR, one
speaker after another: its wav.scp names DATA_DIR's audio). Each is a Kaldi data dir with reco2dur, for
steps/data/augment_data_dir.py (--fg-noise-dir / --bg-noise-dir), reverberate_data_dir.py
(--rir-set-parameters OUT_DIR/rirs_sim/rir_list) and local/make_degraded.py. Take the babble from the
training speakers (data/train) so that test speakers are never heard in it.
"""
import argparse
import logging
import sys

from spkid.augment.sources import babble_dir, simulated_rir_dir, synthetic_noise_dir
from spkid.errors import SpkidError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate", type=int, default=16000)
    parser.add_argument("--noises", type=int, default=12)
    parser.add_argument("--rirs", type=int, default=20)
    parser.add_argument("--babble-from", default=None)
    parser.add_argument("--babble", type=int, default=50)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s (%(name)s) %(message)s")
    try:
        print(synthetic_noise_dir(f"{args.out_dir}/noise_synth", args.rate, args.noises, seed=args.seed))
        print(simulated_rir_dir(f"{args.out_dir}/rirs_sim", args.rate, args.rirs, seed=args.seed))
        if args.babble_from:
            print(babble_dir(args.babble_from, f"{args.out_dir}/babble", args.babble, seed=args.seed))
    except SpkidError as err:
        sys.exit(f"make_noise_sources.py: {err}")


if __name__ == "__main__":
    main()
