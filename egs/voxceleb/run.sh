#!/usr/bin/env bash
# VoxCeleb entry point: runs the v1 recipe (GE2E on VoxCeleb2 dev, Vox1-O/E/H evaluation), passing every
# option on, e.g.  ./run.sh --voxceleb1-root /corpora/VoxCeleb1 --voxceleb2-root /corpora/VoxCeleb2
# The Deep Speaker recipe is in v2/ (cd v2 && ./run.sh); ResNet34/ECAPA-TDNN with AAM softmax in v3/.
cd "$(dirname "$0")/v1" && exec ./run.sh "$@"
