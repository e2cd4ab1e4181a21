#!/usr/bin/env bash
# Print the number of GPUs this job may use: CUDA_VISIBLE_DEVICES when set, else `nvidia-smi -L`; 0 without.
if [ -n "${CUDA_VISIBLE_DEVICES+x}" ]; then
  if [ -z "$CUDA_VISIBLE_DEVICES" ] || [ "$CUDA_VISIBLE_DEVICES" = "-1" ]; then echo 0; exit 0; fi
  echo "$CUDA_VISIBLE_DEVICES" | tr ',' '\n' | grep -c .
elif command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true
else
  echo 0
fi
