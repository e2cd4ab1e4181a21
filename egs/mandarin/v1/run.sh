#!/usr/bin/env bash
# GE2E on Mandarin: aidatatang_200zh and MagicData training sets, continuing from an English GE2E model
# (--init, as the PaddleSpeech GE2E model was trained on both languages); evaluated on random trials
# of the MagicData and aidatatang_200zh test sets with cosine and PLDA.
#
# Stages (--stage N --stop-stage M runs N..M):
#   0  data: spkid prepare aidatatang_200zh and magicdata (train, dev, test), $data/train = both
#      training sets; trials on each test set (sid/make_trials.py)
#   1  features: 40-dim fbank and energy VAD
#   2  training: spkid train-ge2e --init $init_model under torchrun (one process per visible GPU)
#   3  embeddings of the test sets and of a subset of the training data
#   4  back-end (mean, LDA, PLDA) and scoring: results in $exp/ge2e/scores/results
# See README.md.
set -e

aidatatang_root=/export/corpora/aidatatang  # holds aidatatang_200zh/{transcript,corpus}
magicdata_root=/export/corpora/magicdata    # {train,dev,test}/TRANS.txt and <part>/<spk>/*.wav
download=false     # true: download both from OpenSLR (--mirror URL: another OpenSLR mirror)
mirror=
init_model=../../librispeech/v1/exp/ge2e    # checkpoint or exp dir to start from; empty: from scratch
data=data
exp=exp
fbankdir=fbank
stage=0
stop_stage=4
nj=8
nproc=             # training processes/GPUs [default: the visible GPUs, or 1 CPU process]
config=conf/ge2e_finetune.yaml
train_opts=        # more options for spkid train-ge2e
num_trials=20000   # target and nontarget trials each, per test set
backend_utts_per_spk=50
lda_dim=200

. ./cmd.sh
. ./path.sh
. utils/parse_options.sh

gpus=${nproc:-$(sid/num_gpus.sh)}
model=$exp/ge2e
dl=; $download && dl="--download${mirror:+ --mirror $mirror}"
tests="magicdata_test aidatatang_200zh_test"

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  echo "stage 0: data preparation"
  spkid prepare aidatatang_200zh $dl --corpus-dir "$aidatatang_root" --output-dir $data
  spkid prepare magicdata $dl --corpus-dir "$magicdata_root" --output-dir $data
  utils/combine_data.sh $data/train $data/aidatatang_200zh_train $data/magicdata_train
  for name in $tests; do
    sid/make_trials.py --targets $num_trials --nontargets $num_trials $data/$name $data/$name/trials
  done
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  echo "stage 1: features"
  sid/make_features.sh --cmd "$train_cmd" --nj $nj $exp $fbankdir $data/train $(printf "$data/%s " $tests)
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  echo "stage 2: GE2E training${init_model:+ from $init_model}"
  init=
  if [ -n "$init_model" ]; then
    if [ ! -e "$init_model" ]; then
      echo "$0: no model $init_model to start from: train one (../../librispeech/v1, stage 2), import one" \
           "(spkid import-resemblyzer --output exp/resemblyzer; --init-model exp/resemblyzer) or --init-model ''" >&2
      exit 1
    fi
    init="--init $init_model"
  fi
  sid/run_training.sh --cmd "$cuda_cmd" --nproc $gpus $model/log/train.log \
    train-ge2e --data $data/train --output $model --config $config $init $train_opts
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  echo "stage 3: embeddings"
  utils/subset_data_dir.sh --per-spk $data/train $backend_utts_per_spk $data/train_backend
  for name in $tests train_backend; do
    sid/extract.sh --cmd "$cuda_cmd" --gpu $([ "$gpus" -gt 0 ] && echo 1 || echo 0) \
      $model $data/$name $model/emb_$name
  done
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  echo "stage 4: back-end and scoring"
  sid/backend.sh --cmd "$train_cmd" --lda-dim $lda_dim $model/emb_train_backend $data/train_backend $model/backend
  rm -f $model/scores/results
  for name in $tests; do
    sid/score.sh --cmd "$train_cmd" $model/backend $model/emb_$name $data/$name/trials $model/scores
  done
  echo "results in $model/scores/results"
fi
