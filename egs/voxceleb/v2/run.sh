#!/usr/bin/env bash
# Deep Speaker (Li et al. 2017): a ResCNN encoder pre-trained with softmax, then trained with the cosine
# triplet loss on hard (or random) triplets, on VoxCeleb2 dev; evaluated as v1 on Vox1-O/E/H with cosine
# and PLDA scoring (EER and minDCF).
#
# Stages (--stage N --stop-stage M runs N..M):
#   0  data: as v1 (spkid prepare voxceleb2/voxceleb1, spkid convert-trials)
#   1  features: 64-dim fbank and energy VAD
#   2  softmax pre-training: spkid train-deepspeaker --stage softmax (torchrun, one process per GPU)
#   3  triplet training from the softmax model: --stage triplet --batch $batch --init $exp/deepspeaker_softmax
#   4  embeddings of VoxCeleb1 and of a subset of the training data
#   5  back-end (mean, LDA, PLDA) and scoring: results in $exp/deepspeaker/scores/results
# See README.md.
set -e

voxceleb1_root=/export/corpora/VoxCeleb1
voxceleb2_root=/export/corpora/VoxCeleb2
trials_dir=        # veri_test2.txt, list_test_all2.txt, list_test_hard2.txt [default: $voxceleb1_root]
download=false
data=data
exp=exp
fbankdir=fbank
stage=0
stop_stage=5
nj=8
nproc=             # training processes/GPUs [default: the visible GPUs, or 1 CPU process]
batch=hard         # triplet selection: hard or random
softmax_config=conf/deepspeaker_softmax.yaml
triplet_config=conf/deepspeaker_triplet.yaml
train_opts=        # more options for both training stages, e.g. "--opts model.name gru"
backend_utts_per_spk=50
lda_dim=200

. ./cmd.sh
. ./path.sh
. utils/parse_options.sh

trials_dir=${trials_dir:-$voxceleb1_root}
gpus=${nproc:-$(sid/num_gpus.sh)}
model=$exp/deepspeaker

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  echo "stage 0: data preparation"
  local/prepare_voxceleb.sh --download $download --nj $nj "$voxceleb1_root" "$voxceleb2_root" "$trials_dir" $data
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  echo "stage 1: features"
  sid/make_features.sh --cmd "$train_cmd" --nj $nj $exp $fbankdir $data/voxceleb2_dev $data/voxceleb1
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  echo "stage 2: softmax pre-training"
  sid/run_training.sh --cmd "$cuda_cmd" --nproc $gpus $exp/deepspeaker_softmax/log/train.log \
    train-deepspeaker --stage softmax --data $data/voxceleb2_dev --output $exp/deepspeaker_softmax \
    --config $softmax_config $train_opts
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  echo "stage 3: triplet training ($batch triplets)"
  sid/run_training.sh --cmd "$cuda_cmd" --nproc $gpus $model/log/train.log \
    train-deepspeaker --stage triplet --batch $batch --init $exp/deepspeaker_softmax \
    --data $data/voxceleb2_dev --output $model --config $triplet_config $train_opts
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  echo "stage 4: embeddings"
  utils/subset_data_dir.sh --per-spk $data/voxceleb2_dev $backend_utts_per_spk $data/voxceleb2_dev_backend
  for name in voxceleb1 voxceleb2_dev_backend; do
    sid/extract.sh --cmd "$cuda_cmd" --gpu $([ "$gpus" -gt 0 ] && echo 1 || echo 0) \
      $model $data/$name $model/emb_$name
  done
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  echo "stage 5: back-end and scoring"
  sid/backend.sh --cmd "$train_cmd" --lda-dim $lda_dim $model/emb_voxceleb2_dev_backend \
    $data/voxceleb2_dev_backend $model/backend
  rm -f $model/scores/results
  for t in vox1_o vox1_e vox1_h; do
    sid/score.sh --cmd "$train_cmd" $model/backend $model/emb_voxceleb1 $data/voxceleb1/trials_$t $model/scores
  done
  echo "results in $model/scores/results"
fi
