#!/usr/bin/env bash
# Usage: sid/extract.sh [--cmd CMD] [--gpu 0|1] <model-exp-or-checkpoint> <data-dir> <emb-dir>
# Embeds <data-dir>/feats.scp (VAD-trimmed with vad.scp) with a checkpoint (or the newest in <model-exp>);
# writes <emb-dir>/embedding.{ark,scp} and <emb-dir>/log/extract.log.
cmd=run.pl
gpu=  # 1: run on a GPU (default: when sid/num_gpus.sh sees one)
. utils/parse_options.sh || exit 1
if [ $# -ne 3 ]; then echo "Usage: $0 [--cmd CMD] <model-exp> <data-dir> <emb-dir>" >&2; exit 1; fi
model=$1 data=$2 dir=$3
mkdir -p "$dir/log"
[ -z "$gpu" ] && gpu=$([ "$(sid/num_gpus.sh)" -gt 0 ] && echo 1 || echo 0)
$cmd --gpu $gpu "$dir/log/extract.log" \
  spkid extract-embeddings --model "$model" --data "$data" --use-feats \
    --output "ark,scp:$dir/embedding.ark,$dir/embedding.scp" || exit 1
echo "$0: $(wc -l < "$dir/embedding.scp") embeddings of $data in $dir"
