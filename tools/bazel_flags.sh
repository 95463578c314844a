#!/usr/bin/env bash
# Prints the Bazel flags for this machine: --config=cpu when the CUDA toolkit is absent.
if [ -x /usr/local/cuda/bin/nvcc ]; then
  echo ""
else
  echo "--config=cpu"
fi
