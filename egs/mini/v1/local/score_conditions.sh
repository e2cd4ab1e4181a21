#!/usr/bin/env bash
# Usage: local/score_conditions.sh MODEL_DIR CLEAN_DIR OTHER_DIR...   (run from egs/mini/v1 after . ./path.sh)
# e.g.   local/score_conditions.sh exp/ge2e_pretrained data/test_open data/test_open_degraded
#
# Embeddings of each data dir (MODEL_DIR/conditions/<dir name>/emb.{ark,scp}; redone only when older than
# the dir's wav.scp), then
# cosine scores and EER/minDCF of CLEAN_DIR/trials for every dir. The trials are restricted to utterances
# embedded in every condition (e.g. one that is all silence fails extraction), so the figures compare the
# same pairs; MODEL_DIR/conditions/trials holds them. Prints `<dir name> EER=<x>% minDCF(p=0.01)=<y>` lines.
set -uo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,9s/^# \{0,1\}//p' "$0" >&2
  exit 1
fi
model=$1; clean=$2; shift 2
trials=$model/conditions/trials
for data in "$clean" "$@"; do
  out=$model/conditions/$(basename "$data")
  if [ ! -s "$out/emb.scp" ] || [ "$data/wav.scp" -nt "$out/emb.scp" ]; then
    mkdir -p "$out"
    spkid extract-embeddings --model "$model" --data "$data" --output "ark,scp:$out/emb.ark,$out/emb.scp" \
      2> "$out/extract.log" || echo "$(basename "$data"): $(tail -n 1 "$out/extract.log")" >&2
  fi
  [ -s "$out/emb.scp" ] || { echo "$0: no embeddings in $out/emb.scp (see $out/extract.log)" >&2; exit 1; }
done
cp "$clean/trials" "$trials.tmp" || exit 1
for data in "$clean" "$@"; do
  awk 'NR == FNR {ok[$1] = 1; next} ($1 in ok) && ($2 in ok)' "$model/conditions/$(basename "$data")/emb.scp" "$trials.tmp" \
    > "$trials.tmp2" && mv "$trials.tmp2" "$trials.tmp"
done
mv "$trials.tmp" "$trials"
echo "$(wc -l < "$trials") of $(wc -l < "$clean/trials") trials (both utterances embedded in every condition)"
for data in "$clean" "$@"; do
  out=$model/conditions/$(basename "$data")
  spkid score --trials "$trials" --enroll "scp:$out/emb.scp" --test "scp:$out/emb.scp" --output "$out/scores" \
    2> "$out/score.log" || { cat "$out/score.log" >&2; exit 1; }
  eer=$(spkid compute-eer --trials "$trials" "$out/scores" 2> "$out/compute_eer.log") \
    || { cat "$out/compute_eer.log" >&2; exit 1; }
  mindcf=$(grep -o "minDCF is [0-9.]* at threshold [^ ]* (p-target=0.01" "$out/compute_eer.log" | awk '{print $3}')
  echo "$(basename "$data") EER=${eer}% minDCF(p=0.01)=${mindcf}"
done
