#!/usr/bin/env bash
# Usage: sid/backend.sh [--cmd CMD] [--lda-dim N] <emb-dir> <data-dir> <backend-dir>
# Trains the scoring back-end on training embeddings (speakers from <data-dir>/utt2spk): the mean
# (mean.vec) and LDA + PLDA (plda.npz), as Kaldi's x-vector recipes.
cmd=run.pl
lda_dim=200
. utils/parse_options.sh || exit 1
if [ $# -ne 3 ]; then echo "Usage: $0 [--cmd CMD] [--lda-dim N] <emb-dir> <data-dir> <backend-dir>" >&2; exit 1; fi
emb=$1 data=$2 dir=$3
mkdir -p "$dir/log"
$cmd "$dir/log/mean.log" spkid mean-embeddings "scp:$emb/embedding.scp" "$dir/mean.vec" || exit 1
$cmd "$dir/log/plda.log" spkid train-plda --lda-dim "$lda_dim" "scp:$emb/embedding.scp" "$data/utt2spk" \
  "$dir/plda.npz" || exit 1
