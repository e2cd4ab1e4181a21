#!/usr/bin/env bash
# spkid mini recipe: the embedded default behind `make demo`.
# Real speech of 40 speakers (../shared/data) -> Kaldi data dirs -> fbank + VAD -> a small GE2E
# trained on CPU -> embeddings of held-out utterances -> cosine scores -> EER/minDCF, and the same
# evaluation with the pretrained GE2E shipped inside the resemblyzer package; then Deep Speaker (a
# quarter-size ResCNN: softmax pre-training, then hard-triplet training) on 64-bin fbank.
#
# Usage: ./run.sh [--stage N] [--stop-stage N] [--data-root DIR | --download true] [--nj N]
set -euo pipefail

stage=0
stop_stage=100
data_root=          # a folder of <speaker>/<utt>.(wav|flac); default: ../shared/data of the project
download=false      # true: fetch Mini LibriSpeech (dev-clean-2) through lhotse when there is no data
nj=2
train_config=conf/ge2e.yaml
help_message="Usage: $0 [--stage N] [--stop-stage N] [--data-root DIR] [--download true|false] [--nj N]
Stages: 0 data dirs, 1 fbank + VAD, 2 train GE2E, 3 embed + score (trained GE2E),
        4 embed + score (pretrained GE2E from resemblyzer), 5 Deep Speaker features (64-bin fbank + VAD),
        6 Deep Speaker softmax pre-training, 7 Deep Speaker triplet training, 8 embed + score (Deep Speaker),
        9 summary"

cd "$(dirname "$0")"
. ./path.sh
. ./cmd.sh
. utils/parse_options.sh

root=$(cd ../../.. && pwd)
if [ -z "$data_root" ]; then
  data_root=$root/../shared/data
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
  echo "== stage 0: data dirs from $data_root"
  rm -rf data
  local/make_data.py --speaker-depth $speaker_depth "$data_root" data
  for x in train test; do
    utils/validate_data_dir.sh --no-feats --no-text data/$x
  done
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  echo "== stage 1: fbank (conf/fbank.conf) and energy VAD (conf/vad.conf)"
  for x in train test; do
    steps/make_fbank.sh --nj $nj --cmd "$train_cmd" --fbank-config conf/fbank.conf \
      data/$x exp/make_fbank/$x fbank
    steps/compute_vad_decision.sh --nj $nj --cmd "$train_cmd" --vad-config conf/vad.conf \
      --fbank-config conf/fbank.conf data/$x exp/make_vad/$x fbank
    utils/fix_data_dir.sh data/$x
  done
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  echo "== stage 2: train GE2E ($train_config); log in exp/ge2e/train.log"
  # Multi-process data parallel: add --nprocs N, or run torchrun --nproc_per_node N -m spkid train ...
  spkid train --data data/train --output exp/ge2e --config $train_config \
    --valid-data data/test --valid-trials data/test/trials
fi

score_model() {  # <model> <name>: embeddings of data/test from audio, cosine scores, EER and minDCF
  local model=$1 name=$2 dir=exp/$2
  mkdir -p $dir/scores
  spkid extract-embeddings --model "$model" --data data/test \
    --output ark,scp:$dir/embeddings/test.ark,$dir/embeddings/test.scp
  spkid score --trials data/test/trials --enroll scp:$dir/embeddings/test.scp \
    --test scp:$dir/embeddings/test.scp --output $dir/scores/test.cosine
  eer=$(spkid compute-eer --trials data/test/trials $dir/scores/test.cosine \
          --det-plot $dir/scores/det.png 2> $dir/scores/compute_eer.log)
  mindcf=$(grep -o "minDCF is [0-9.]* at threshold [^ ]* (p-target=0.01" $dir/scores/compute_eer.log \
             | awk '{print $3}')
  echo "$name EER=${eer}% minDCF(p=0.01)=${mindcf}" | tee $dir/scores/result.txt
}

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  echo "== stage 3: embeddings (from audio, with the checkpoint's front-end) and scores: trained GE2E"
  score_model exp/ge2e ge2e
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  echo "== stage 4: the pretrained GE2E inside the resemblyzer package, no download"
  spkid import-resemblyzer --output exp/ge2e_pretrained
  score_model exp/ge2e_pretrained ge2e_pretrained
  # Which threshold? Calibrate on a development list (here the test trials themselves), then verify.
  spkid calibrate --trials data/test/trials --scores exp/ge2e_pretrained/scores/test.cosine \
    --output exp/ge2e_pretrained/scores/calibration.json > /dev/null
  read -r utt1 utt2 <<< "$(grep -m1 ' target$' data/test/trials | awk '{print $1, $2}')"
  wav1=$(awk -v u="$utt1" '$1 == u {print $2}' data/test/wav.scp)
  wav2=$(awk -v u="$utt2" '$1 == u {print $2}' data/test/wav.scp)
  echo "spkid verify $utt1 $utt2: $(spkid verify --model exp/ge2e_pretrained \
    --calibration exp/ge2e_pretrained/scores/calibration.json "$wav1" "$wav2" 2>/dev/null)"
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  echo "== stage 5: Deep Speaker features: 64-bin fbank (conf/fbank64.conf) and energy VAD"
  for x in train test; do
    utils/copy_data_dir.sh data/$x data/${x}_ds
    rm -f data/${x}_ds/{feats,vad}.scp
    steps/make_fbank.sh --nj $nj --cmd "$train_cmd" --fbank-config conf/fbank64.conf \
      data/${x}_ds exp/make_fbank/${x}_ds fbank64
    steps/compute_vad_decision.sh --nj $nj --cmd "$train_cmd" --vad-config conf/vad.conf \
      --fbank-config conf/fbank64.conf data/${x}_ds exp/make_vad/${x}_ds fbank64
  done
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  echo "== stage 6: Deep Speaker softmax pre-training; log in exp/ds_softmax/train.log"
  spkid train --config conf/deepspeaker_softmax.yaml --data data/train_ds --output exp/ds_softmax \
    --valid-data data/test_ds --valid-trials data/test_ds/trials
fi

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
  echo "== stage 7: Deep Speaker hard-triplet training from the softmax encoder; log in exp/ds_triplet/train.log"
  spkid train --config conf/deepspeaker_triplet.yaml --data data/train_ds --output exp/ds_triplet \
    --init exp/ds_softmax --valid-data data/test_ds --valid-trials data/test_ds/trials
fi

if [ "$stage" -le 8 ] && [ "$stop_stage" -ge 8 ]; then
  echo "== stage 8: embeddings and scores: Deep Speaker after softmax, after triplets"
  score_model exp/ds_softmax ds_softmax
  score_model exp/ds_triplet ds_triplet
fi

if [ "$stage" -le 9 ] && [ "$stop_stage" -ge 9 ]; then
  echo "== stage 9: summary"
  echo "data:        data/train ($(wc -l < data/train/utt2spk) utts, $(wc -l < data/train/spk2utt) speakers)," \
       "data/test ($(wc -l < data/test/utt2spk) utts, $(wc -l < data/test/trials) trials)"
  echo "features:    data/{train,test}/feats.scp, vad.scp (fbank/)"
  for name in ge2e ge2e_pretrained ds_softmax ds_triplet; do
    [ -f exp/$name/scores/result.txt ] || continue
    echo "model:       $(ls exp/$name/checkpoints/*.pt | tail -n 1)"
    echo "embeddings:  exp/$name/embeddings/test.{ark,scp}; scores exp/$name/scores/test.cosine;" \
         "DET plot exp/$name/scores/det.png"
    echo "result:      $(cat exp/$name/scores/result.txt)"
  done
fi
