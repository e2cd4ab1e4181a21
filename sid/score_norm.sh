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
  spkid compute-eer --trials "$trials" --p-target 0.01 --p-target 0.05 "$dir/${name}_$b" \
    > /dev/null 2> "$dir/log/eer_${name}_$b.log" || { cat "$dir/log/eer_${name}_$b.log" >&2; exit 1; }
  eer=$(grep -o 'Equal error rate is [0-9.e+-]*' "$dir/log/eer_${name}_$b.log" | awk '{print $5}')
  dcf=($(grep -o 'minDCF is [0-9.e+-]*' "$dir/log/eer_${name}_$b.log" | awk '{print $3}'))
  printf "%-22s %-6s EER %7s%%  minDCF(0.01) %s  minDCF(0.05) %s\n" "$name" $b "$eer" "${dcf[0]}" "${dcf[1]}" \
    | tee -a "$dir/results"
done
