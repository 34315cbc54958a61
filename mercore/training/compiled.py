"""``run.compile``: one fold model after another compiled in the same process, never silently eager.

torch.compile keeps a cache of compiled variants per forward function, shared by every model of
the class a process builds. LOSO folds bring new batch sizes (test subjects have 1 to 30 clips,
training folds differ by a few clips), each size range a new variant in training and again in
inference; on the composite the default limit of 8 was reached after 12 to 28 folds and torch then
ran the model eagerly without saying so in the result. The limit is raised to a bound that a
LOSO stays under (the variants are a few size ranges times grad modes, not a number per fold),
and reaching it is made an error: a fold either runs compiled or fails by name.
"""
from __future__ import annotations

from typing import cast

import torch
import torch._dynamo.config as dynamo_config
from torch import nn

COMPILED_VARIANTS = 64  # per forward function and process; the composite HTNet run needed 9+ in one process


def check_compiler(device: torch.device) -> None:
    """On a CPU, inductor writes C++ and needs a compiler: without one every fold would fail at
    its first step, so say so before any work (a ValueError naming the option)."""
    if device.type != "cpu":
        return
    from torch._inductor import cpp_builder

    try:
        cpp_builder.get_cpp_compiler()  # finds one that runs (`--version`) or raises
    except Exception as exc:  # torch's InvalidCxxCompiler, or whatever its search meets
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"run.compile=true: torch.compile on a CPU needs a C++ compiler ({reason}); "
                         "install one (g++ or clang++) or set run.compile=false") from None


def compile_model(model: nn.Module, backend: str = "inductor") -> nn.Module:
    """``torch.compile(model)`` with the process's recompile limit raised to ``COMPILED_VARIANTS``
    (never lowered) and an error, not an eager fallback, when a forward needs more."""
    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, COMPILED_VARIANTS)
    dynamo_config.fail_on_recompile_limit_hit = True
    return cast(nn.Module, torch.compile(model, backend=backend))  # an OptimizedModule, used as the model
