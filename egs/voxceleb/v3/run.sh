#!/usr/bin/env bash
# ResNet34 and ECAPA-TDNN with AAM softmax (WeSpeaker's recipe) trained on VoxCeleb2 dev, then large-margin
# fine-tuned, checkpoint-averaged and evaluated on VoxCeleb1 (cleaned Vox1-O, Vox1-E, Vox1-H) with cosine
# scoring, without and with AS-norm (cohort: training speaker means); EER and minDCF at p-target 0.01, 0.05.
#
# Stages (--stage N --stop-stage M runs N..M), for each model in $models:
#   0  data: as v1 (spkid prepare voxceleb2/voxceleb1, spkid convert-trials)
#   1  features: 80-dim fbank and energy VAD
#   2  training: spkid train --config conf/$m.yaml (torchrun, one process per GPU)
#   3  large-margin fine-tuning: spkid train --init exp/$m --config conf/${m}_lm.yaml
#   4  checkpoint averaging: spkid average-checkpoints --exp exp/${m}_lm --num $avg_num
#   5  embeddings of VoxCeleb1 and of a subset of the training data (mean and AS-norm cohort)
#   6  scoring: cosine and AS-norm: results in $exp/${m}_lm/scores/results
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
stop_stage=6
nj=8
nproc=             # training processes/GPUs [default: the visible GPUs, or 1 CPU process]
models="resnet34 ecapa_tdnn"  # conf/<model>.yaml and conf/<model>_lm.yaml
train_opts=        # more options for both training stages, e.g. "--opts train.max_steps 1000"
avg_num=5          # checkpoints averaged after fine-tuning (keep_checkpoints in the configs: 10)
cohort_utts_per_spk=10  # training utterances per speaker embedded for the mean and the AS-norm cohort
top_n=300          # AS-norm: highest cohort scores used

. ./cmd.sh
. ./path.sh
. utils/parse_options.sh

trials_dir=${trials_dir:-$voxceleb1_root}
gpus=${nproc:-$(sid/num_gpus.sh)}

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  echo "stage 0: data preparation"
  local/prepare_voxceleb.sh --download $download --nj $nj "$voxceleb1_root" "$voxceleb2_root" "$trials_dir" $data
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  echo "stage 1: features (80-dim fbank, energy VAD)"
  sid/make_features.sh --cmd "$train_cmd" --nj $nj $exp $fbankdir $data/voxceleb2_dev $data/voxceleb1
fi

for m in $models; do
  model=$exp/${m}_lm
  if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
    echo "stage 2: $m training (AAM softmax)"
    sid/run_training.sh --cmd "$cuda_cmd" --nproc $gpus $exp/$m/log/train.log \
      train --data $data/voxceleb2_dev --output $exp/$m --config conf/$m.yaml $train_opts
  fi

  if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
    echo "stage 3: $m large-margin fine-tuning"
    sid/run_training.sh --cmd "$cuda_cmd" --nproc $gpus $model/log/train.log \
      train --init $exp/$m --data $data/voxceleb2_dev --output $model --config conf/${m}_lm.yaml $train_opts
  fi

  if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
    echo "stage 4: $m checkpoint averaging (last $avg_num)"
    spkid average-checkpoints --exp $model --num $avg_num --output $model/avg_model.pt
  fi

  if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
    echo "stage 5: $m embeddings"
    [ -d $data/voxceleb2_dev_cohort ] || \
      utils/subset_data_dir.sh --per-spk $data/voxceleb2_dev $cohort_utts_per_spk $data/voxceleb2_dev_cohort
    for name in voxceleb1 voxceleb2_dev_cohort; do
      sid/extract.sh --cmd "$cuda_cmd" --gpu $([ "$gpus" -gt 0 ] && echo 1 || echo 0) \
        $model/avg_model.pt $data/$name $model/emb_$name
    done
  fi

  if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
    echo "stage 6: $m cosine scoring and AS-norm"
    cohort=$model/emb_voxceleb2_dev_cohort
    spkid mean-embeddings scp:$cohort/embedding.scp $cohort/mean.vec
    spkid mean-embeddings $data/voxceleb2_dev_cohort/spk2utt scp:$cohort/embedding.scp \
      ark,scp:$cohort/spk_embedding.ark,$cohort/spk_embedding.scp
    rm -f $model/scores/results
    for t in vox1_o vox1_e vox1_h; do
      sid/score_norm.sh --cmd "$train_cmd" --top-n $top_n $cohort/mean.vec scp:$cohort/spk_embedding.scp \
        $model/emb_voxceleb1 $data/voxceleb1/trials_$t $model/scores
    done
    echo "results in $model/scores/results"
  fi
done
