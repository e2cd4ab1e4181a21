#!/usr/bin/env bash
# Compute energy-based voice activity decisions for a data dir, as Kaldi's sid/compute_vad_decision.sh.
# Writes VADDIR/vad_NAME.JOB.{ark,scp} and DATA/vad.scp.
# Without --fbank-config, column 0 of DATA/feats.scp is the log energy (Kaldi: MFCC c0). Filterbanks
# made without --use-energy have no energy column: give --fbank-config (the one make_fbank.sh used),
# and the raw log energy is computed from the audio with the same framing, aligned with the fbank frames.

# Begin configuration section.
nj=4
cmd=run.pl
vad_config=conf/vad.conf
fbank_config=
# End configuration section.

help_message="Usage: $0 [options] <data-dir> [<log-dir> [<vad-dir>]]
 e.g.: $0 --nj 8 data/train exp/make_vad/train mfcc
Note: <log-dir> defaults to <data-dir>/log, and <vad-dir> defaults to <data-dir>/data.
Options:
  --vad-config <config-file>       # Kaldi-style options for 'spkid compute-vad' (default: $vad_config)
  --fbank-config <config-file>     # energy from the audio, framed as these fbank options (see above)
  --nj <nj>                        # number of parallel jobs (default: $nj)
  --cmd (run.pl|slurm.pl <opts>)   # how to run jobs (default: $cmd)"

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
vaddir=${3:-$data/data}
name=$(basename "$data")
case $vaddir in /*) ;; *) vaddir=$PWD/$vaddir ;; esac  # the scp files point into it

for f in "$data/feats.scp" ${vad_config:+"$vad_config"}; do
  [ -f "$f" ] || { echo "$0: no such file $f" 1>&2; exit 1; }
done
[[ "$nj" =~ ^[1-9][0-9]*$ ]] || { echo "$0: invalid --nj '$nj'" 1>&2; exit 1; }
if [ -f "$data/vad.scp" ]; then
  mkdir -p "$data/.backup"
  echo "$0: moving $data/vad.scp to $data/.backup"
  mv "$data/vad.scp" "$data/.backup/vad.scp"
fi
validate_data_dir.sh --no-text "$data" >/dev/null || exit 1
mkdir -p "$vaddir" "$logdir" || exit 1
split_data.sh "$data" "$nj" || exit 1
sdata=$data/split$nj
rm -f "$vaddir"/vad_"${name}".*.scp 2>/dev/null

if [ -n "$fbank_config" ]; then
  [ -f "$fbank_config" ] || { echo "$0: no such file $fbank_config" 1>&2; exit 1; }
  input=(--fbank-config "$fbank_config" --data "$sdata/JOB")
else
  input=("scp:$sdata/JOB/feats.scp")
fi
if ! $cmd JOB=1:"$nj" "$logdir/vad_${name}.JOB.log" \
    spkid compute-vad ${vad_config:+--config "$vad_config"} "${input[@]}" \
      "ark,scp:$vaddir/vad_${name}.JOB.ark,$vaddir/vad_${name}.JOB.scp"; then
  echo "$0: WARNING: some jobs failed; see $logdir/vad_${name}.*.log" 1>&2
fi

for n in $(seq "$nj"); do
  cat "$vaddir/vad_${name}.$n.scp" 2>/dev/null
done | LC_ALL=C sort -s -k1,1 > "$data/vad.scp.tmp" && mv "$data/vad.scp.tmp" "$data/vad.scp"

nc=$(wc -l < "$data/vad.scp")
nu=$(wc -l < "$data/feats.scp")
if [ "$nc" -eq 0 ]; then
  echo "$0: no VAD decisions were computed for $name; see $logdir/vad_${name}.*.log" 1>&2
  rm -f "$data/vad.scp"
  exit 1
fi
if [ "$nc" -ne "$nu" ]; then
  echo "$0: WARNING: $((nu - nc)) of $nu utterances got no VAD output; validate_data_dir.sh will fail;"
  echo "$0: consider using utils/fix_data_dir.sh $data"
fi
echo "Created VAD output for $name"
