#!/usr/bin/env bash
# Usage: sid/eer_line.sh <trials> <scores> <name> <backend> <score-dir>
# EER and minDCF (p-target 0.01, 0.05) of <scores> on <trials>; prints and appends to <score-dir>/results:
#   <name> <backend> EER <eer>% minDCF(0.01) <d> minDCF(0.05) <d>
# (compute-eer's log: <score-dir>/log/eer_<name>_<backend>.log). Shared by sid/score.sh and sid/score_norm.sh.
if [ $# -ne 5 ]; then echo "Usage: $0 <trials> <scores> <name> <backend> <score-dir>" >&2; exit 1; fi
trials=$1 scores=$2 name=$3 b=$4 dir=$5
log=$dir/log/eer_${name}_$b.log
spkid compute-eer --trials "$trials" --p-target 0.01 --p-target 0.05 "$scores" > /dev/null 2> "$log" \
  || { cat "$log" >&2; exit 1; }
eer=$(grep -o 'Equal error rate is [0-9.e+-]*' "$log" | awk '{print $5}')
dcf=($(grep -o 'minDCF is [0-9.e+-]*' "$log" | awk '{print $3}'))
printf "%-22s %-6s EER %7s%%  minDCF(0.01) %s  minDCF(0.05) %s\n" "$name" "$b" "$eer" "${dcf[0]}" "${dcf[1]}" \
  | tee -a "$dir/results"
