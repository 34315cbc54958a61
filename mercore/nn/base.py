"""The model interfaces of the product card (the others are in :mod:`mercore.interfaces`, which
does not import torch), and the checks the core runs on every model a method builds.

``Encoder`` and ``Fusion`` are optional building blocks, not part of the contract a method must
meet: a model may be any ``nn.Module`` whose ``forward`` maps the batch dict to logits. A model
that composes its parts from them (DFR-Net, RRMFNet) gets their widths and outputs checked before
any feature is computed and on its first forward pass, so a mis-wired part fails in one line."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Encoder(nn.Module):
    """Optional base of a model part that maps one input stream to features. ``out_features`` tells
    the next module its width: the size of dimension 1 of the output (channels of a map
    ``(B, C, ...)`` or width of ``(B, D)``); the core checks it (:func:`check_modules`)."""

    out_features: int


class Fusion(nn.Module):
    """Optional base of a model part that combines several streams (a mapping name -> tensor, or a
    sequence) into one tensor; the core checks that it returns one."""


class ContractError(TypeError):
    """A module breaks the contract of the interface it derives from; the message names it."""


def _where(module: nn.Module, path: str, owner: str) -> str:
    return f"{owner}: {type(module).__module__}.{type(module).__qualname__} (model.{path or '<root>'})"


def check_modules(model: nn.Module, owner: str) -> None:
    """Refuse a model whose encoders or fusions could not be composed: each implements ``forward``
    and each encoder declares an integer ``out_features >= 1``. ``owner`` (the method) heads the
    message. Runs on every model the core builds, before any training."""
    for path, module in model.named_modules():
        if not isinstance(module, (Encoder, Fusion)):
            continue
        kind = "Encoder" if isinstance(module, Encoder) else "Fusion"
        if type(module).forward is nn.Module.forward:
            raise ContractError(f"{_where(module, path, owner)} does not implement forward (mercore.{kind})")
        width = getattr(module, "out_features", None)
        if kind == "Encoder" and (not isinstance(width, int) or isinstance(width, bool) or width < 1):
            raise ContractError(f"{_where(module, path, owner)} must set out_features to an integer >= 1 "
                                f"(mercore.Encoder), got {width!r}")


def watch_outputs(model: nn.Module, owner: str) -> None:
    """Check the first output of every encoder (a tensor whose dimension 1 is ``out_features``)
    and fusion (a tensor) when the model first runs; each check then removes itself."""
    for path, module in model.named_modules():
        if isinstance(module, (Encoder, Fusion)):
            handles: list[Any] = []
            handles.append(module.register_forward_hook(_output_check(path, owner, handles)))


def _output_check(path: str, owner: str, handles: list[Any]) -> Any:
    def hook(module: nn.Module, args: Any, output: Any) -> None:
        handles.pop().remove()
        if not isinstance(output, torch.Tensor):
            raise ContractError(f"{_where(module, path, owner)} returned {type(output).__name__}, not a tensor")
        width = getattr(module, "out_features", None)
        if isinstance(module, Encoder) and (output.dim() < 2 or output.shape[1] != width):
            raise ContractError(f"{_where(module, path, owner)} declares out_features {width} but returned "
                                f"shape {tuple(output.shape)} (dimension 1 must be out_features)")
    return hook
