#!/usr/bin/env bash
# Usage: sid/score_norm.sh [--cmd CMD] [--top-n N] <mean-vec> <cohort-rspec> <emb-dir> <trials> <score-dir>
# Cosine scoring of <trials> (both sides embedded in <emb-dir>) after subtracting <mean-vec>, without and with
# adaptive score normalisation (AS-norm, top N cohort scores; cohort: e.g. training speaker means), as
# WeSpeaker's VoxCeleb recipes; prints and appends to <score-dir>/results one line per back-end:
#   <trials-name> <cosine|asnorm> EER <eer>% minDCF(0.01) <d> minDCF(0.05) <d>
cmd=run.pl
top_n=300
. utils/parse_options.sh || exit 1
if [ $# -ne 5 ]; then
  echo "Usage: $0 [--cmd CMD] [--top-n N] <mean-vec> <cohort-rspec> <emb-dir> <trials> <score-dir>" >&2; exit 1
fi
mean=$1 cohort=$2 emb=$3 trials=$4 dir=$5
name=$(basename "$trials")
[ "$name" = trials ] && name=$(basename "$(dirname "$trials")")  # data/<set>/trials -> <set>
mkdir -p "$dir/log"
for b in cosine asnorm; do
  opts="--norm none"
  [ $b = asnorm ] && opts="--norm asnorm --cohort $cohort --top-n $top_n"
  $cmd "$dir/log/score_${name}_$b.log" spkid score --trials "$trials" --enroll "scp:$emb/embedding.scp" \
    --test "scp:$emb/embedding.scp" --backend cosine --mean "$mean" $opts --output "$dir/${name}_$b" || exit 1
  sid/eer_line.sh "$trials" "$dir/${name}_$b" "$name" $b "$dir" || exit 1
done
