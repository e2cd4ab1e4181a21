#!/usr/bin/env bash
# validate_data_dir.sh [--no-feats] [--no-wav] [--no-text] [--no-spk-sort] DATA: check a data dir as Kaldi's.
# Thin wrapper: the logic is in spkid/kaldi (python3 -m spkid.kaldi.datadir_cli validate --help for usage).
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m spkid.kaldi.datadir_cli validate "$@"
