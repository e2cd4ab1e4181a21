#!/usr/bin/env bash
# Usage: sid/score.sh [--cmd CMD] <backend-dir> <emb-dir> <trials> <score-dir>
# Scores <trials> (`<enroll> <test> target|nontarget`, both sides embedded in <emb-dir>) with cosine
# and with the PLDA of <backend-dir>; prints and appends to <score-dir>/results one line per back-end:
#   <trials-name (or its data dir's name)> <backend> EER <eer>% minDCF(0.01) <d> minDCF(0.05) <d>
cmd=run.pl
. utils/parse_options.sh || exit 1
if [ $# -ne 4 ]; then echo "Usage: $0 [--cmd CMD] <backend-dir> <emb-dir> <trials> <score-dir>" >&2; exit 1; fi
backend=$1 emb=$2 trials=$3 dir=$4
name=$(basename "$trials")
[ "$name" = trials ] && name=$(basename "$(dirname "$trials")")  # data/<set>/trials -> <set>
mkdir -p "$dir/log"
for b in cosine plda; do
  opts="--backend cosine"
  [ $b = plda ] && opts="--plda $backend/plda.npz"
  $cmd "$dir/log/score_${name}_$b.log" spkid score --trials "$trials" --enroll "scp:$emb/embedding.scp" \
    --test "scp:$emb/embedding.scp" $opts --output "$dir/${name}_$b" || exit 1
  sid/eer_line.sh "$trials" "$dir/${name}_$b" "$name" $b "$dir" || exit 1
done
