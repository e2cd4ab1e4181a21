#!/usr/bin/env bash
# Write DATA/utt2dur (utterance durations in seconds, from wav.scp and segments), as Kaldi's
# utils/data/get_utt2dur.sh. The work is done by 'spkid get-utt2dur DATA'.

# Begin configuration section (--nj, --cmd and --frame-shift are accepted for Kaldi compatibility;
# durations are read in one process, from the audio headers).
nj=4
cmd=run.pl
frame_shift=0.01
read_entire_file=false
# End configuration section.

help_message="Usage: $0 [options] <datadir>
 e.g.: $0 data/train
This script writes <datadir>/utt2dur, with the duration of each utterance in seconds
(from wav.scp, and segments if present). An existing utt2dur with a line for every utterance is kept.
Options: --read-entire-file <true|false>  # decode whole files instead of trusting headers (default: false)
         --nj, --cmd, --frame-shift        # accepted for compatibility with Kaldi, ignored"

root=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
export PATH="$root/utils:$PATH"
command -v spkid >/dev/null || { [ -x "$root/.venv/bin/spkid" ] && export PATH="$PATH:$root/.venv/bin"; }
. "$root/utils/parse_options.sh" || exit 1

if [ $# -ne 1 ]; then
  printf "%s\n" "$help_message" 1>&2
  exit 1
fi
data=$1
[ -f "$data/utt2spk" ] || { echo "$0: no such file $data/utt2spk" 1>&2; exit 1; }
if [ -s "$data/utt2dur" ] && [ "$(wc -l < "$data/utt2spk")" -eq "$(wc -l < "$data/utt2dur")" ]; then
  echo "$0: $data/utt2dur already exists with the expected length.  We won't recompute it."
  exit 0
fi
opts=()
if $read_entire_file; then opts=(--read-entire-file); fi
spkid get-utt2dur "${opts[@]}" "$data" || { echo "$0: failed to compute $data/utt2dur" 1>&2; exit 1; }
echo "$0: computed $data/utt2dur"
