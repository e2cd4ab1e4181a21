#!/usr/bin/env bash
# GE2E d-vectors trained on VoxCeleb2 dev; evaluated on VoxCeleb1 with the cleaned Vox1-O, Vox1-E and
# Vox1-H trial lists, scored with cosine and PLDA (EER and minDCF at p-target 0.01 and 0.05).
#
# Stages (--stage N --stop-stage M runs N..M):
#   0  data: lhotse manifests and Kaldi data dirs (spkid prepare), Kaldi trials (spkid convert-trials)
#   1  features: 40-dim fbank (steps/make_fbank.sh) and energy VAD (steps/compute_vad_decision.sh); with
#      --shards true, VoxCeleb2 dev is written as shards instead (spkid make-shards: FLAC in tar, streamed
#      in training with features computed on the fly; the way to train across nodes)
#   2  training: spkid train-ge2e under torchrun, one process per visible GPU (1 CPU process without)
#   3  embeddings of VoxCeleb1 and of a subset of the training data (for the back-end)
#   4  back-end (mean, LDA, PLDA) and scoring: results in $exp/ge2e/scores/results
# See README.md for disk space, run times and results.
set -e

voxceleb1_root=/export/corpora/VoxCeleb1  # vox1_meta.csv, wav/<spk>/<video>/<utt>.wav
voxceleb2_root=/export/corpora/VoxCeleb2  # vox2_meta.csv, dev/aac/<spk>/<video>/<utt>.m4a
trials_dir=        # veri_test2.txt, list_test_all2.txt, list_test_hard2.txt [default: $voxceleb1_root]
download=false     # true: download the corpora first (VoxCeleb needs credentials from its authors)
data=data
exp=exp
fbankdir=fbank
stage=0
stop_stage=4
nj=8               # parallel jobs for data preparation, features and scoring
nproc=             # training processes/GPUs [default: the visible GPUs, or 1 CPU process]
config=conf/ge2e.yaml
train_opts=        # more options for spkid train-ge2e, e.g. "--opts train.max_steps 1000"
backend_utts_per_spk=50  # training utterances per speaker embedded for the back-end
lda_dim=200
shards=false       # true: train from shards of VoxCeleb2 dev (stage 1) instead of its feats.scp
shard_size=1000    # utterances per shard

. ./cmd.sh
. ./path.sh
. utils/parse_options.sh

trials_dir=${trials_dir:-$voxceleb1_root}
gpus=${nproc:-$(sid/num_gpus.sh)}
model=$exp/ge2e

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  echo "stage 0: data preparation"
  local/prepare_voxceleb.sh --download $download --nj $nj "$voxceleb1_root" "$voxceleb2_root" "$trials_dir" $data
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  echo "stage 1: features"
  if $shards; then
    spkid make-shards --data $data/voxceleb2_dev --output $data/voxceleb2_dev_shards --shard-size $shard_size \
      --nj $nj
    sid/make_features.sh --cmd "$train_cmd" --nj $nj $exp $fbankdir $data/voxceleb1
  else
    sid/make_features.sh --cmd "$train_cmd" --nj $nj $exp $fbankdir $data/voxceleb2_dev $data/voxceleb1
  fi
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  echo "stage 2: GE2E training"
  sid/run_training.sh --cmd "$cuda_cmd" --nproc $gpus $model/log/train.log \
    train-ge2e --data $data/voxceleb2_dev$($shards && echo _shards) --output $model --config $config $train_opts
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  echo "stage 3: embeddings"
  utils/subset_data_dir.sh --per-spk $data/voxceleb2_dev $backend_utts_per_spk $data/voxceleb2_dev_backend
  for name in voxceleb1 voxceleb2_dev_backend; do
    sid/extract.sh --cmd "$cuda_cmd" --gpu $([ "$gpus" -gt 0 ] && echo 1 || echo 0) \
      $model $data/$name $model/emb_$name
  done
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  echo "stage 4: back-end and scoring"
  sid/backend.sh --cmd "$train_cmd" --lda-dim $lda_dim $model/emb_voxceleb2_dev_backend \
    $data/voxceleb2_dev_backend $model/backend
  rm -f $model/scores/results
  for t in vox1_o vox1_e vox1_h; do
    sid/score.sh --cmd "$train_cmd" $model/backend $model/emb_voxceleb1 $data/voxceleb1/trials_$t $model/scores
  done
  echo "results in $model/scores/results"
fi
