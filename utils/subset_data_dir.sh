#!/usr/bin/env bash
# subset_data_dir.sh [--first|--last|--per-spk|--speakers|--shortest|--random] SRC N DEST, or --utt-list/--spk-list LIST SRC DEST.
# Thin wrapper: the logic is in spkid/kaldi (python3 -m spkid.kaldi.datadir_cli subset --help for usage).
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m spkid.kaldi.datadir_cli subset "$@"
