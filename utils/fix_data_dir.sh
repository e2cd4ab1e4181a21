#!/usr/bin/env bash
# fix_data_dir.sh [--utt-extra-files 'a b'] [--spk-extra-files 'c'] DATA: sort and filter a data dir as Kaldi's.
# Thin wrapper: the logic is in spkid/kaldi (python3 -m spkid.kaldi.datadir_cli fix --help for usage).
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m spkid.kaldi.datadir_cli fix "$@"
