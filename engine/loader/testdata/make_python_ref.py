"""Regenerates python_ref.safetensors with the reference Python library.

Run where torch and safetensors are installed (it was made with safetensors 0.8.0):
    python3 make_python_ref.py python_ref.safetensors
safetensors_test checks that WriteSafetensors produces the same bytes and reads it back.
"""
import sys

import torch
from safetensors.torch import save_file

tensors = {
    "b.weight": torch.tensor([[1.0, -2.5, 3.25], [0.5, 65504.0, -0.0]], dtype=torch.float16),
    "a.weight": torch.tensor([1.0, -2.5, 1e-3], dtype=torch.bfloat16),
    "c": torch.arange(6, dtype=torch.float32).reshape(3, 2, 1),
    "z.bias": torch.tensor([7.0]),
}
save_file(tensors, sys.argv[1], metadata={"format": "pt"})
