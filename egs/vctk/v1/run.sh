#!/usr/bin/env bash
# Deep Speaker on VCTK: ResCNN softmax pre-training, then triplet training (hard or random triplets) on
# all but $num_test_speakers speakers; evaluated on random trials of the held-out speakers (cosine, PLDA).
#
# Stages (--stage N --stop-stage M runs N..M):
#   0  data: spkid prepare vctk (0.92 or 0.80 release, found by its audio folder), split by speaker into
#      $data/vctk_train and $data/vctk_test, test trials (sid/make_trials.py)
#   1  features: 64-dim fbank and energy VAD, the 48 kHz audio resampled to 16 kHz
#   2  softmax pre-training: spkid train-deepspeaker --stage softmax (torchrun, one process per GPU)
#   3  triplet training from the softmax model (--batch $batch)
#   4  embeddings of the test speakers and of the training data
#   5  back-end (mean, LDA, PLDA) and scoring: results in $exp/deepspeaker/scores/results
# See README.md.
set -e

vctk_root=/export/corpora/VCTK-Corpus-0.92  # speaker-info.txt, txt/, wav48_silence_trimmed/ (or wav48/)
mic=mic2           # 0.92 release: which microphone
download=false     # true: download the 0.92 release from Edinburgh DataShare (--mirror URL: another archive)
mirror=
data=data
exp=exp
fbankdir=fbank
stage=0
stop_stage=5
nj=8
nproc=             # training processes/GPUs [default: the visible GPUs, or 1 CPU process]
batch=hard         # triplet selection: hard or random
num_test_speakers=10  # the last speakers (sorted ids) are held out for testing
softmax_config=conf/deepspeaker_softmax.yaml
triplet_config=conf/deepspeaker_triplet.yaml
train_opts=        # more options for both training stages
num_trials=10000   # target and nontarget trials each
lda_dim=200

. ./cmd.sh
. ./path.sh
. utils/parse_options.sh

gpus=${nproc:-$(sid/num_gpus.sh)}
model=$exp/deepspeaker
dl=; $download && dl="--download${mirror:+ --mirror $mirror}"

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  echo "stage 0: data preparation"
  spkid prepare vctk $dl --corpus-dir "$vctk_root" --output-dir $data --mic $mic
  cut -d' ' -f1 $data/vctk/spk2utt | tail -n $num_test_speakers > $data/vctk/test_speakers
  utils/subset_data_dir.sh --spk-list $data/vctk/test_speakers $data/vctk $data/vctk_test
  utils/filter_scp.pl --exclude $data/vctk/test_speakers $data/vctk/spk2utt | cut -d' ' -f1 \
    > $data/vctk/train_speakers
  utils/subset_data_dir.sh --spk-list $data/vctk/train_speakers $data/vctk $data/vctk_train
  sid/make_trials.py --targets $num_trials --nontargets $num_trials $data/vctk_test $data/vctk_test/trials
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  echo "stage 1: features"
  sid/make_features.sh --cmd "$train_cmd" --nj $nj $exp $fbankdir $data/vctk_train $data/vctk_test
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  echo "stage 2: softmax pre-training"
  sid/run_training.sh --cmd "$cuda_cmd" --nproc $gpus $exp/deepspeaker_softmax/log/train.log \
    train-deepspeaker --stage softmax --data $data/vctk_train --output $exp/deepspeaker_softmax \
    --config $softmax_config $train_opts
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  echo "stage 3: triplet training ($batch triplets)"
  sid/run_training.sh --cmd "$cuda_cmd" --nproc $gpus $model/log/train.log \
    train-deepspeaker --stage triplet --batch $batch --init $exp/deepspeaker_softmax \
    --data $data/vctk_train --output $model --config $triplet_config $train_opts
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  echo "stage 4: embeddings"
  for name in vctk_test vctk_train; do
    sid/extract.sh --cmd "$cuda_cmd" --gpu $([ "$gpus" -gt 0 ] && echo 1 || echo 0) \
      $model $data/$name $model/emb_$name
  done
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  echo "stage 5: back-end and scoring"
  sid/backend.sh --cmd "$train_cmd" --lda-dim $lda_dim $model/emb_vctk_train $data/vctk_train $model/backend
  rm -f $model/scores/results
  sid/score.sh --cmd "$train_cmd" $model/backend $model/emb_vctk_test $data/vctk_test/trials $model/scores
  echo "results in $model/scores/results"
fi
