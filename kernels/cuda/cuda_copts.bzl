"""Copts for C++ (gcc) targets that include the CUDA kernels' headers."""

CUDA_COPTS = ["-Xpreprocessor", "-idirafter/usr/local/cuda/include"]
