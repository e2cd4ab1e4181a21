#!/usr/bin/env bash
# Usage: local/augment_compare.sh [SHARED_DATA]   (run from egs/mini/v1 after . ./path.sh)
#
# The same small classifier (conf/augment_compare.yaml) trained without and with on-the-fly augmentation
# (conf/augment_compare_aug.yaml) on data/train of the open-set split, then EER/minDCF of both on the clean
# data/test_open and its degraded copy (local/score_conditions.sh). Training noise, babble and RIRs come from
# data/aug_sources (seed 1); the degraded test set uses other ones (data/noise_synth, data/rirs_sim, seed 0).
set -euo pipefail
shared=${1:-../../../../shared/data}
[ -s data/test_open/trials ] || local/make_data.py --heldout-speakers 10 "$shared" data
[ -d data/noise_synth ] || local/make_noise_sources.py --babble-from data/train data
[ -d data/aug_sources ] || local/make_noise_sources.py --seed 1 --babble-from data/train data/aug_sources
[ -d data/test_open_degraded ] || local/make_degraded.py --noise-dir data/noise_synth \
  --rir-list data/rirs_sim/rir_list data/test_open data/test_open_degraded
for name in augment_compare augment_compare_aug; do
  spkid train --config conf/$name.yaml --data data/train --output exp/$name
  local/score_conditions.sh exp/$name data/test_open data/test_open_degraded
done
