"""Device choice and seeding: CUDA with mixed precision when present, else CPU; same code."""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available; ``cpu``, ``cuda``, ``cuda:1`` are taken as given."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ValueError(f"--device {spec!r}: not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {spec}: CUDA is not available on this machine (use auto or cpu)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {spec}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                         f"numbered from 0")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {spec}: MPS is not available on this machine (use auto or cpu)")
    return device


def amp_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """Autocast dtype: with ``auto``, bf16 on GPUs that support it, fp16 on older ones and none on
    CPU; ``bf16`` asked for on a CPU is honoured (CPUs with AVX-512 BF16 train some models faster
    with it: benchmarks/throughput.md), ``fp16`` on a CPU is refused (no loss scaling there)."""
    if precision in ("fp32", "off", "none"):
        return None
    if device.type != "cuda":
        if precision == "bf16" and device.type == "cpu":
            return torch.bfloat16
        if precision == "fp16":
            raise ValueError(f"run.precision=fp16 needs a CUDA device, not {device.type}: use bf16 or fp32")
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask for deterministic kernels where they exist."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
