#!/usr/bin/env bash
# Compute Kaldi filterbank features of a data dir in parallel jobs, as Kaldi's steps/make_fbank.sh.
# Writes FBANKDIR/raw_fbank_NAME.JOB.{ark,scp}, then DATA/feats.scp, DATA/utt2num_frames, DATA/utt2dur.

# Begin configuration section.
nj=4
cmd=run.pl
fbank_config=conf/fbank.conf
write_utt2num_frames=true
write_utt2dur=true
compress=true  # accepted for Kaldi compatibility; the features are stored as float matrices
# End configuration section.

help_message="Usage: $0 [options] <data-dir> [<log-dir> [<fbank-dir>]]
 e.g.: $0 --nj 8 --cmd run.pl data/train exp/make_fbank/train fbank
Note: <log-dir> defaults to <data-dir>/log, and <fbank-dir> defaults to <data-dir>/data.
Options:
  --fbank-config <config-file>     # Kaldi-style options for 'spkid compute-fbank' (default: $fbank_config)
  --nj <nj>                        # number of parallel jobs (default: $nj)
  --cmd (run.pl|slurm.pl <opts>)   # how to run jobs (default: $cmd)
  --write-utt2num-frames <true|false>  # write <data-dir>/utt2num_frames (default: $write_utt2num_frames)
  --write-utt2dur <true|false>         # write <data-dir>/utt2dur (default: $write_utt2dur)"

echo "$0 $*"  # the command line, for the logs
root=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
if [ -f path.sh ]; then . ./path.sh; fi
export PATH="$root/utils:$PATH"
command -v spkid >/dev/null || { [ -x "$root/.venv/bin/spkid" ] && export PATH="$PATH:$root/.venv/bin"; }
. "$root/utils/parse_options.sh" || exit 1

if [ $# -lt 1 ] || [ $# -gt 3 ]; then
  printf "%s\n" "$help_message" 1>&2
  exit 1
fi
data=$1
logdir=${2:-$data/log}
fbankdir=${3:-$data/data}
name=$(basename "$data")
case $fbankdir in /*) ;; *) fbankdir=$PWD/$fbankdir ;; esac  # the scp files point into it

for f in "$data/wav.scp" ${fbank_config:+"$fbank_config"}; do
  [ -f "$f" ] || { echo "$0: no such file $f" 1>&2; exit 1; }
done
[[ "$nj" =~ ^[1-9][0-9]*$ ]] || { echo "$0: invalid --nj '$nj'" 1>&2; exit 1; }
for f in feats.scp utt2num_frames $($write_utt2dur && echo utt2dur); do
  if [ -f "$data/$f" ]; then
    mkdir -p "$data/.backup"
    echo "$0: moving $data/$f to $data/.backup"
    mv "$data/$f" "$data/.backup/$f"
  fi
done
validate_data_dir.sh --no-text --no-feats "$data" >/dev/null || exit 1
mkdir -p "$fbankdir" "$logdir" || exit 1
split_data.sh "$data" "$nj" || exit 1
sdata=$data/split$nj

write_opts=()
if $write_utt2num_frames; then
  write_opts+=(--write-utt2num-frames "ark,t:$fbankdir/utt2num_frames_${name}.JOB")
fi
if $write_utt2dur; then
  write_opts+=(--write-utt2dur "ark,t:$fbankdir/utt2dur_${name}.JOB")
fi
rm -f "$fbankdir"/{raw_fbank_"${name}".*.scp,utt2num_frames_"${name}".*,utt2dur_"${name}".*} 2>/dev/null

if ! $cmd JOB=1:"$nj" "$logdir/make_fbank_${name}.JOB.log" \
    spkid compute-fbank ${fbank_config:+--config "$fbank_config"} --data "$sdata/JOB" \
      "${write_opts[@]}" \
      "ark,scp:$fbankdir/raw_fbank_${name}.JOB.ark,$fbankdir/raw_fbank_${name}.JOB.scp"; then
  echo "$0: WARNING: some jobs failed; see $logdir/make_fbank_${name}.*.log" 1>&2
fi

# concatenate the per-job lists (jobs hold sorted, disjoint ranges of speakers; sort anyway)
for n in $(seq "$nj"); do
  cat "$fbankdir/raw_fbank_${name}.$n.scp" 2>/dev/null
done | LC_ALL=C sort -s -k1,1 > "$data/feats.scp.tmp" && mv "$data/feats.scp.tmp" "$data/feats.scp"
for table in $($write_utt2num_frames && echo utt2num_frames) $($write_utt2dur && echo utt2dur); do
  for n in $(seq "$nj"); do
    cat "$fbankdir/${table}_${name}.$n" 2>/dev/null
  done | LC_ALL=C sort -s -k1,1 > "$data/$table.tmp" && mv "$data/$table.tmp" "$data/$table"
  rm -f "$fbankdir/${table}_${name}".*
done

nf=$(wc -l < "$data/feats.scp")
nu=$(wc -l < "$data/utt2spk")
if [ "$nf" -eq 0 ]; then
  echo "$0: no features were computed for $name; see $logdir/make_fbank_${name}.*.log" 1>&2
  rm -f "$data/feats.scp" "$data/utt2num_frames" "$data/utt2dur"
  exit 1
fi
if [ "$nf" -ne "$nu" ]; then
  echo "$0: $((nu - nf)) of $nu utterances failed (no features); see $logdir/make_fbank_${name}.*.log"
  echo "$0: consider using utils/fix_data_dir.sh $data"
fi
echo "Succeeded creating filterbank features for $name"
