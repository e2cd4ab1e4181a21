#!/usr/bin/env bash
# Usage: sid/make_features.sh [--cmd CMD] [--nj N] [--fbank-config F] [--vad-config V] <exp> <fbankdir> <data-dir>...
# Filterbank features (feats.scp) and energy VAD (vad.scp) for each data dir, then fix_data_dir.sh.
cmd=run.pl
nj=4
fbank_config=conf/fbank.conf
vad_config=conf/vad.conf
. utils/parse_options.sh || exit 1
if [ $# -lt 3 ]; then
  echo "Usage: $0 [--cmd CMD] [--nj N] [--fbank-config F] [--vad-config V] <exp> <fbankdir> <data-dir>..." >&2; exit 1
fi
exp=$1 fbankdir=$2; shift 2
for data in "$@"; do
  name=$(basename "$data")
  steps/make_fbank.sh --nj $nj --cmd "$cmd" --fbank-config $fbank_config "$data" $exp/make_fbank/$name $fbankdir \
    || exit 1
  steps/compute_vad_decision.sh --nj $nj --cmd "$cmd" --vad-config $vad_config --fbank-config $fbank_config \
    "$data" $exp/make_vad/$name $fbankdir || exit 1
  utils/fix_data_dir.sh "$data" || exit 1
done
