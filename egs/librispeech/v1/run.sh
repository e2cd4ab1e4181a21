#!/usr/bin/env bash
# GE2E as PaddleSpeech's examples/ge2e trained it (English part): LibriSpeech train-other-500 and all of
# VoxCeleb1; evaluated on random trials of LibriSpeech test-clean (unseen speakers) with cosine and PLDA.
#
# Stages (--stage N --stop-stage M runs N..M):
#   0  data: spkid prepare librispeech (train-other-500, test-clean) and voxceleb1 (all), combined into
#      $data/train; test-clean trials (sid/make_trials.py)
#   1  features: 40-dim fbank and energy VAD
#   2  training: spkid train-ge2e under torchrun, one process per visible GPU (1 CPU process without)
#   3  embeddings of test-clean and of a subset of the training data
#   4  back-end (mean, LDA, PLDA) and scoring: results in $exp/ge2e/scores/results
# See README.md.
set -e

librispeech_root=/export/corpora/LibriSpeech  # <part>/<spk>/<chapter>/*.flac (or the folder holding LibriSpeech/)
voxceleb1_root=/export/corpora/VoxCeleb1      # vox1_meta.csv, wav/<spk>/<video>/<utt>.wav
download=false     # true: download LibriSpeech from OpenSLR (--mirror URL for another mirror) and VoxCeleb1
mirror=
data=data
exp=exp
fbankdir=fbank
stage=0
stop_stage=4
nj=8
nproc=             # training processes/GPUs [default: the visible GPUs, or 1 CPU process]
config=conf/ge2e.yaml
train_opts=        # more options for spkid train-ge2e
num_trials=20000   # target and nontarget trials each, drawn from test-clean
backend_utts_per_spk=50
lda_dim=200

. ./cmd.sh
. ./path.sh
. utils/parse_options.sh

gpus=${nproc:-$(sid/num_gpus.sh)}
model=$exp/ge2e
dl=; $download && dl="--download${mirror:+ --mirror $mirror}"

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  echo "stage 0: data preparation"
  spkid prepare librispeech $dl --corpus-dir "$librispeech_root" --output-dir $data \
    --parts train-other-500,test-clean --nj $nj
  spkid prepare voxceleb1 $($download && echo --download) --corpus-dir "$voxceleb1_root" --output-dir $data \
    --parts all --nj $nj
  utils/combine_data.sh $data/train $data/librispeech_train_other_500 $data/voxceleb1
  sid/make_trials.py --targets $num_trials --nontargets $num_trials $data/librispeech_test_clean \
    $data/librispeech_test_clean/trials
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  echo "stage 1: features"
  sid/make_features.sh --cmd "$train_cmd" --nj $nj $exp $fbankdir $data/train $data/librispeech_test_clean
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  echo "stage 2: GE2E training"
  sid/run_training.sh --cmd "$cuda_cmd" --nproc $gpus $model/log/train.log \
    train-ge2e --data $data/train --output $model --config $config $train_opts
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  echo "stage 3: embeddings"
  utils/subset_data_dir.sh --per-spk $data/train $backend_utts_per_spk $data/train_backend
  for name in librispeech_test_clean train_backend; do
    sid/extract.sh --cmd "$cuda_cmd" --gpu $([ "$gpus" -gt 0 ] && echo 1 || echo 0) \
      $model $data/$name $model/emb_$name
  done
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  echo "stage 4: back-end and scoring"
  sid/backend.sh --cmd "$train_cmd" --lda-dim $lda_dim $model/emb_train_backend $data/train_backend $model/backend
  rm -f $model/scores/results
  sid/score.sh --cmd "$train_cmd" $model/backend $model/emb_librispeech_test_clean \
    $data/librispeech_test_clean/trials $model/scores
  echo "results in $model/scores/results"
fi
