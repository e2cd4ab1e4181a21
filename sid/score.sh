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
  spkid compute-eer --trials "$trials" --p-target 0.01 --p-target 0.05 "$dir/${name}_$b" \
    > /dev/null 2> "$dir/log/eer_${name}_$b.log" || { cat "$dir/log/eer_${name}_$b.log" >&2; exit 1; }
  eer=$(grep -o 'Equal error rate is [0-9.e+-]*' "$dir/log/eer_${name}_$b.log" | awk '{print $5}')
  dcf=($(grep -o 'minDCF is [0-9.e+-]*' "$dir/log/eer_${name}_$b.log" | awk '{print $3}'))
  printf "%-22s %-6s EER %7s%%  minDCF(0.01) %s  minDCF(0.05) %s\n" "$name" $b "$eer" "${dcf[0]}" "${dcf[1]}" \
    | tee -a "$dir/results"
done
