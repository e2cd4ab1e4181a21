#!/usr/bin/env bash
# Copy a Kaldi data dir (as Kaldi's utils/copy_data_dir.sh without prefix/suffix options):
#   utils/copy_data_dir.sh SRC DEST
# Copies the data-dir files present in SRC (wav.scp segments utt2spk spk2utt text utt2dur utt2num_frames
# reco2file_and_channel reco2dur spk2gender utt2lang feats.scp vad.scp cmvn.scp frame_shift) and trials.
# DEST is created; files of those names already in DEST are replaced.
set -euo pipefail
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
  echo "Usage: $0 SRC DEST"
  exit 0
fi
if [ $# -ne 2 ]; then
  echo "Usage: $0 SRC DEST" 1>&2
  exit 1
fi
src=$1
dest=$2
if [ ! -f "$src/utt2spk" ]; then
  echo "$0: no such file $src/utt2spk" 1>&2
  exit 1
fi
if [ "$(cd "$src" && pwd)" = "$(mkdir -p "$dest" && cd "$dest" && pwd)" ]; then
  echo "$0: SRC and DEST are the same directory: $src" 1>&2
  exit 1
fi
for f in wav.scp segments utt2spk spk2utt text utt2dur utt2num_frames reco2file_and_channel reco2dur \
         spk2gender utt2lang feats.scp vad.scp cmvn.scp frame_shift trials; do
  if [ -f "$src/$f" ]; then
    cp "$src/$f" "$dest/$f"
  fi
done
echo "$0: copied data from $src to $dest"
