#!/usr/bin/env bash
# spkid mini recipe: the embedded default behind `make demo` (under 10 minutes on 2 CPU cores).
# Real speech of 40 speakers (../shared/data) -> Kaldi data dirs with an open-set split (30 training
# speakers; 10 held out altogether) -> the pretrained CAM++ (3D-Speaker, zh-en) and the pretrained
# Resemblyzer GE2E, no training: embeddings from audio, cosine scores, EER/minDCF on the open-set
# trials (data/test_open) and the closed-set ones (data/test), a calibration beside each model and a
# `spkid verify` -> fbank + VAD -> a small GE2E trained on CPU, scored the same way.
# Longer stages (--long true, or --stage 10): Deep Speaker (softmax, then hard triplets) and the
# pretrained CAM++ fine-tuned with a new AAM-softmax head on the training speakers + speechocean762.
#
# Usage: ./run.sh [--stage N] [--stop-stage N] [--long true] [--data-root DIR | --download true] [--nj N]
set -euo pipefail

stage=0
stop_stage=9        # the short demo; --long true (or --stop-stage 15) runs the training stages 10-15 too
long=false
data_root=          # a folder of <speaker>/<utt>.(wav|flac); default: ../shared/data of the project
extra_train=        # more training speakers for fine-tuning (stage 14); default: ../shared/speechocean762
download=false      # true: fetch Mini LibriSpeech (dev-clean-2) through lhotse when there is no data
nj=2
train_config=conf/ge2e.yaml
help_message="Usage: $0 [--stage N] [--stop-stage N] [--long true] [--data-root DIR] [--download true|false] [--nj N]
Stages: 0 data dirs (open-set split), 1 pretrained CAM++ (import, embed, score, calibrate, verify),
        2 pretrained GE2E from resemblyzer (the same), 3 fbank + VAD, 4 train a small GE2E,
        5 embed + score (trained GE2E), 9 summary.
Long (--long true or --stage 10): 10 Deep Speaker features (64-bin fbank + VAD), 11 Deep Speaker softmax
        pre-training, 12 Deep Speaker triplet training, 13 embed + score (Deep Speaker),
        14 CAM++ fine-tuning (AAM head, training speakers + speechocean762) + score, 15 summary"

cd "$(dirname "$0")"
. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
if [ "$long" = true ]; then
  stop_stage=15
fi
# One torch thread per process: extraction runs worker processes, and on a small shared machine
# intra-op threads stall when the cores are busy (training ran several times slower with 2 here).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

root=$(cd ../../.. && pwd)
if [ -z "$data_root" ]; then
  data_root=$root/../shared/data
fi
if [ -z "$extra_train" ]; then
  extra_train=$root/../shared/speechocean762
fi

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  speaker_depth=0
  if [ ! -d "$data_root" ]; then
    if [ "$download" != true ]; then
      echo "$0: no audio at $data_root." 1>&2
      echo "$0: give --data-root DIR (a folder of <speaker>/<utt>.wav|flac), or --download true to fetch" 1>&2
      echo "$0: Mini LibriSpeech (dev-clean-2, ~126 MB) through lhotse." 1>&2
      exit 1
    fi
    data_root=$(local/download_librispeech.py downloads | tail -n 1)
    speaker_depth=1
  fi
  echo "== stage 0: data dirs from $data_root (10 speakers held out: data/test_open)"
  rm -rf data
  local/make_data.py --heldout-speakers 10 --speaker-depth $speaker_depth "$data_root" data
  for x in train test test_open; do
    utils/validate_data_dir.sh --no-feats --no-text data/$x
  done
fi

score_model() {  # <model> <name> <set>: embeddings of data/<set> from audio, cosine scores, EER and minDCF
  local model=$1 name=$2 set=$3 dir=exp/$2 trials=data/$3/trials
  mkdir -p $dir/scores/$set
  # an utterance a model cannot embed (e.g. nothing voiced left for Resemblyzer's VAD) is reported and
  # skipped; the trials naming it are then left out
  if ! spkid extract-embeddings --model "$model" --data data/$set \
         --output ark,scp:$dir/embeddings/$set.ark,$dir/embeddings/$set.scp; then
    [ -s $dir/embeddings/$set.scp ] || exit 1
    trials=$dir/scores/$set/trials
    awk 'NR == FNR {ok[$1] = 1; next} ($1 in ok) && ($2 in ok)' $dir/embeddings/$set.scp data/$set/trials > $trials
    echo "$0: $name: scoring the $(wc -l < $trials) of $(wc -l < data/$set/trials) trials of embedded utterances"
  fi
  spkid score --trials $trials --enroll scp:$dir/embeddings/$set.scp \
    --test scp:$dir/embeddings/$set.scp --output $dir/scores/$set/cosine
  eer=$(spkid compute-eer --trials $trials $dir/scores/$set/cosine \
          --det-plot $dir/scores/$set/det.png 2> $dir/scores/$set/compute_eer.log)
  mindcf=$(grep -o "minDCF is [0-9.]* at threshold [^ ]* (p-target=0.01" $dir/scores/$set/compute_eer.log \
             | awk '{print $3}')
  echo "$name $set EER=${eer}% minDCF(p=0.01)=${mindcf} ($(grep -c ' target$' $trials) target trials)" \
    | tee $dir/scores/$set/result.txt
}

calibrate_and_verify() {  # <exp dir>: calibration on the closed-set trials beside the model, then verify
  local dir=$1
  # Which threshold? Fitted on data/test (closed set: its speakers are not in test_open, and none of the
  # 40 were seen by the pretrained models), written as DIR/calibration.json where spkid verify and
  # spkid.api.load_model find it; the open-set EER above is therefore not optimistic.
  spkid calibrate --trials data/test/trials --scores $dir/scores/test/cosine --model $dir \
    --output $dir/calibration.json > /dev/null
  read -r utt1 utt2 <<< "$(grep -m1 ' target$' data/test_open/trials | awk '{print $1, $2}')"
  wav1=$(awk -v u="$utt1" '$1 == u {print $2}' data/test_open/wav.scp)
  wav2=$(awk -v u="$utt2" '$1 == u {print $2}' data/test_open/wav.scp)
  echo "spkid verify --model $dir $utt1 $utt2: $(spkid verify --model $dir "$wav1" "$wav2" 2>/dev/null)"
}

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  echo "== stage 1: the pretrained CAM++ of 3D-Speaker (zh-en, 192-dim; weights cached by make), no training"
  spkid import-pretrained campplus-zh-en --output exp/campplus
  score_model exp/campplus campplus test_open
  score_model exp/campplus campplus test
  calibrate_and_verify exp/campplus
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  echo "== stage 2: the pretrained GE2E inside the resemblyzer package, no download"
  spkid import-pretrained resemblyzer-ge2e --output exp/ge2e_pretrained
  score_model exp/ge2e_pretrained ge2e_pretrained test_open
  score_model exp/ge2e_pretrained ge2e_pretrained test
  calibrate_and_verify exp/ge2e_pretrained
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  echo "== stage 3: fbank (conf/fbank.conf) and energy VAD (conf/vad.conf)"
  for x in train test; do
    steps/make_fbank.sh --nj $nj --cmd "$train_cmd" --fbank-config conf/fbank.conf \
      data/$x exp/make_fbank/$x fbank
    steps/compute_vad_decision.sh --nj $nj --cmd "$train_cmd" --vad-config conf/vad.conf \
      --fbank-config conf/fbank.conf data/$x exp/make_vad/$x fbank
    utils/fix_data_dir.sh data/$x
  done
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  echo "== stage 4: train a small GE2E ($train_config); log in exp/ge2e/train.log"
  # Multi-process data parallel: add --nprocs N, or run torchrun --nproc_per_node N -m spkid train ...
  spkid train --data data/train --output exp/ge2e --config $train_config \
    --valid-data data/test --valid-trials data/test/trials
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  echo "== stage 5: embeddings (from audio, with the checkpoint's front-end) and scores: trained GE2E"
  score_model exp/ge2e ge2e test_open
  score_model exp/ge2e ge2e test
fi

summary() {
  echo "data:        data/train ($(wc -l < data/train/utt2spk) utts, $(wc -l < data/train/spk2utt) speakers);" \
       "closed set data/test ($(wc -l < data/test/utt2spk) utts of the training speakers," \
       "$(grep -c ' target$' data/test/trials) target / $(wc -l < data/test/trials) trials);" \
       "open set data/test_open ($(wc -l < data/test_open/utt2spk) utts of $(wc -l < data/test_open/spk2utt)" \
       "unseen speakers, $(grep -c ' target$' data/test_open/trials) target / $(wc -l < data/test_open/trials) trials)"
  echo "open set (speakers unseen by every model):"
  for name in campplus ge2e_pretrained ge2e ds_softmax ds_triplet campplus_ft; do
    [ -f exp/$name/scores/test_open/result.txt ] && echo "  $(cat exp/$name/scores/test_open/result.txt)"
  done
  echo "closed set (speakers the trained models saw; unseen by the pretrained campplus and ge2e_pretrained):"
  for name in campplus ge2e_pretrained ge2e ds_softmax ds_triplet campplus_ft; do
    [ -f exp/$name/scores/test/result.txt ] && echo "  $(cat exp/$name/scores/test/result.txt)"
  done
  echo "models in exp/<name>/checkpoints; embeddings exp/<name>/embeddings/<set>.{ark,scp}; scores and" \
       "DET plots exp/<name>/scores/<set>/; calibrations exp/{campplus,ge2e_pretrained}/calibration.json"
}

if [ "$stage" -le 9 ] && [ "$stop_stage" -ge 9 ]; then
  echo "== stage 9: summary"
  summary
  echo "(longer stages: ./run.sh --stage 10 --stop-stage 15: Deep Speaker and CAM++ fine-tuning)"
fi

if [ "$stage" -le 10 ] && [ "$stop_stage" -ge 10 ]; then
  echo "== stage 10: Deep Speaker features: 64-bin fbank (conf/fbank64.conf) and energy VAD"
  for x in train test; do
    utils/copy_data_dir.sh data/$x data/${x}_ds
    rm -f data/${x}_ds/{feats,vad}.scp
    steps/make_fbank.sh --nj $nj --cmd "$train_cmd" --fbank-config conf/fbank64.conf \
      data/${x}_ds exp/make_fbank/${x}_ds fbank64
    steps/compute_vad_decision.sh --nj $nj --cmd "$train_cmd" --vad-config conf/vad.conf \
      --fbank-config conf/fbank64.conf data/${x}_ds exp/make_vad/${x}_ds fbank64
  done
fi

if [ "$stage" -le 11 ] && [ "$stop_stage" -ge 11 ]; then
  echo "== stage 11: Deep Speaker softmax pre-training; log in exp/ds_softmax/train.log"
  spkid train --config conf/deepspeaker_softmax.yaml --data data/train_ds --output exp/ds_softmax \
    --valid-data data/test_ds --valid-trials data/test_ds/trials
fi

if [ "$stage" -le 12 ] && [ "$stop_stage" -ge 12 ]; then
  echo "== stage 12: Deep Speaker hard-triplet training from the softmax encoder; log in exp/ds_triplet/train.log"
  spkid train --config conf/deepspeaker_triplet.yaml --data data/train_ds --output exp/ds_triplet \
    --init exp/ds_softmax --valid-data data/test_ds --valid-trials data/test_ds/trials
fi

if [ "$stage" -le 13 ] && [ "$stop_stage" -ge 13 ]; then
  echo "== stage 13: embeddings and scores: Deep Speaker after softmax, after triplets"
  for name in ds_softmax ds_triplet; do
    score_model exp/$name $name test_open
    score_model exp/$name $name test
  done
fi

if [ "$stage" -le 14 ] && [ "$stop_stage" -ge 14 ]; then
  echo "== stage 14: fine-tuning the pretrained CAM++ (conf/campplus_finetune.yaml); log in exp/campplus_ft/train.log"
  # Training speakers: data/train plus speechocean762's 125 (8 utterances each); the model, front-end and
  # whole-utterance extraction come from --init; a new AAM-softmax head, the encoder frozen at first.
  train_ft=data/train
  if [ -d "$extra_train" ]; then
    local/make_data.py --test-per-speaker 0 "$extra_train" data/extra > /dev/null
    utils/combine_data.sh data/train_ft data/train data/extra/train
    train_ft=data/train_ft
  fi
  spkid train --init exp/campplus --config conf/campplus_finetune.yaml --data $train_ft --output exp/campplus_ft
  score_model exp/campplus_ft campplus_ft test_open
  score_model exp/campplus_ft campplus_ft test
fi

if [ "$stage" -le 15 ] && [ "$stop_stage" -ge 15 ]; then
  echo "== stage 15: summary"
  summary
fi
