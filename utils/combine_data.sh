#!/usr/bin/env bash
# combine_data.sh [--extra-files 'a b'] [--skip-fix true] DEST SRC1 SRC2 ...: combine data dirs as Kaldi's.
# Thin wrapper: the logic is in spkid/kaldi (python3 -m spkid.kaldi.datadir_cli combine --help for usage).
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m spkid.kaldi.datadir_cli combine "$@"
