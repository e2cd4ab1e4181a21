#!/usr/bin/env bash
# Usage: sid/run_training.sh [--cmd CMD] [--nproc N] <log-file> <spkid-command> <args>...
# e.g.:  sid/run_training.sh --cmd "$cuda_cmd" exp/ge2e/log/train.log train-ge2e --data data/train --output exp/ge2e
# Runs `torchrun --nproc_per_node N -m spkid <spkid-command> <args>` through CMD (run.pl, slurm.pl ...): one
# process per visible GPU (sid/num_gpus.sh), or a single process on the CPU when there is no GPU.
# With slurm.pl the GPUs are on the compute node: give --nproc N (and CMD "slurm.pl --gpu N").
cmd=run.pl
nproc=
. utils/parse_options.sh || exit 1
if [ $# -lt 2 ]; then
  echo "Usage: $0 [--cmd CMD] [--nproc N] <log-file> <spkid-command> <args>..." >&2; exit 1
fi
log=$1; shift
gpus=${nproc:-$(sid/num_gpus.sh)}
if [ "$gpus" -gt 0 ]; then nproc=$gpus; else nproc=1; fi
echo "$0: training with $nproc process(es) on $([ "$gpus" -gt 0 ] && echo "$gpus GPU(s)" || echo "the CPU"); log: $log"
$cmd --gpu "$gpus" "$log" torchrun --standalone --nnodes 1 --nproc_per_node "$nproc" -m spkid "$@"
