#!/usr/bin/env bash
# Usage: local/encoder_compare.sh [--dir DIR] [--shared DIR] [--train-opts "--opts KEY VALUE ..."] [name ...]
#        (from egs/mini/v1; --shared holds data/ and speechocean762/, default ../shared of the project)
#
# README "Open-set comparison on the mini corpus (CPU)": the encoders of conf/compare/<name>.yaml (default:
# ge2e deepspeaker ecapa resnet34 campplus) trained on the same 155 speakers (the 30 training speakers of
# the open-set split + the 125 of speechocean762) and the same 64-bin fbank + energy VAD, then scored by
# cosine on data/test_open (10 speakers none of them saw): the final model and the average of its last 3
# checkpoints. One line per model in DIR/results.txt: parameters, training seconds, EER, minDCF.
set -euo pipefail
dir=/tmp/encoder_compare
shared=../../../../shared
nj=2
train_opts=        # e.g. "--opts train.max_steps 3" (the tests' tiny runs)
. ./path.sh
. utils/parse_options.sh
names=${*:-ge2e deepspeaker ecapa resnet34 campplus}
mkdir -p $dir/exp

if [ ! -s $dir/test_open/feats.scp ]; then
  local/make_data.py --heldout-speakers 10 $shared/data $dir/DATA
  local/make_data.py $shared/speechocean762 $dir/SO
  utils/combine_data.sh $dir/train $dir/DATA/train $dir/SO/all
  utils/copy_data_dir.sh $dir/DATA/test_open $dir/test_open
  cp $dir/DATA/test_open/trials $dir/test_open/
  for x in train test_open; do
    steps/make_fbank.sh --nj $nj --fbank-config conf/fbank64.conf $dir/$x $dir/exp/make_fbank/$x $dir/fbank
    steps/compute_vad_decision.sh --nj $nj --vad-config conf/vad.conf --fbank-config conf/fbank64.conf \
      $dir/$x $dir/exp/make_vad/$x $dir/fbank
  done
fi

score() {  # <model (exp dir or checkpoint)> <name>: EER and minDCF of cosine scores on test_open
  local out=$dir/exp/$2
  spkid extract-embeddings --model $1 --data $dir/test_open --use-feats --device cpu \
    --output ark,scp:$out.ark,$out.scp 2> $out.extract.log
  spkid score --trials $dir/test_open/trials --enroll scp:$out.scp --test scp:$out.scp \
    --output $out.cosine 2> $out.score.log
  spkid compute-eer --trials $dir/test_open/trials --p-target 0.01 --p-target 0.05 $out.cosine \
    > $out.eer 2> $out.eer.log
  echo "$2 EER=$(cat $out.eer) minDCF(0.01,0.05)=$(grep -o 'minDCF is [0-9.]*' $out.eer.log | awk '{print $3}' | paste -sd,)"
}

for name in $names; do
  exp=$dir/exp/$name
  start=$(date +%s)
  spkid train --config conf/compare/$name.yaml --data $dir/train --output $exp --device cpu --fresh \
    $train_opts > $exp.train.log 2>&1
  seconds=$(( $(date +%s) - start ))
  params=$(grep -o -m1 '[0-9,]* encoder parameters' $exp.train.log || true)
  spkid average-checkpoints --exp $exp --num 3 --output $exp/avg3.pt > $exp.avg.log 2>&1
  { echo "$name: $params, trained in $seconds s (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    echo "  $(score $exp $name)"
    echo "  $(score $exp/avg3.pt ${name}_avg3)"; } | tee -a $dir/results.txt
done
