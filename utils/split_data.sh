#!/usr/bin/env bash
# split_data.sh [--per-utt] DATA N: split DATA into DATA/split<N>[utt]/{1..N} as Kaldi's split_data.sh.
# Thin wrapper: the logic is in spkid/kaldi (python3 -m spkid.kaldi.datadir_cli split-data --help for usage).
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m spkid.kaldi.datadir_cli split-data "$@"
