#!/usr/bin/env bash
# Usage: local/prepare_voxceleb.sh [--download true] [--nj N] <voxceleb1-root> <voxceleb2-root> <trials-dir> <data>
# Writes <data>/voxceleb2_dev (training), <data>/voxceleb1 (all of VoxCeleb1: evaluation) with the trial
# lists Vox1-O (cleaned), Vox1-E and Vox1-H of <trials-dir> as <data>/voxceleb1/trials_vox1_{o,e,h},
# and the lhotse manifests in <data>/manifests. Parts already prepared are skipped.
download=false
nj=4
. utils/parse_options.sh || exit 1
if [ $# -ne 4 ]; then
  echo "Usage: $0 [--download true] [--nj N] <voxceleb1-root> <voxceleb2-root> <trials-dir> <data>" >&2; exit 1
fi
vox1=$1 vox2=$2 trials_dir=$3 data=$4
dl=; $download && dl=--download
spkid prepare voxceleb2 $dl --corpus-dir "$vox2" --output-dir "$data" --parts dev --nj $nj || exit 1
spkid prepare voxceleb1 $dl --corpus-dir "$vox1" --output-dir "$data" --parts all --nj $nj || exit 1
for pair in vox1_o:veri_test2.txt vox1_e:list_test_all2.txt vox1_h:list_test_hard2.txt; do
  list=$trials_dir/${pair#*:}
  if [ ! -f "$list" ]; then
    echo "$0: no trial list $list (get it from https://www.robots.ox.ac.uk/~vgg/data/voxceleb/meta/${pair#*:}" \
         "or set --trials-dir)" >&2
    exit 1
  fi
  spkid convert-trials --data "$data/voxceleb1" "$list" "$data/voxceleb1/trials_${pair%%:*}" || exit 1
done
