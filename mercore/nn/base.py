"""The model interfaces of the product card (the others are in :mod:`mercore.interfaces`, which
does not import torch)."""
from __future__ import annotations

from torch import nn


class Encoder(nn.Module):
    """Maps one input stream to features. ``out_features`` tells the next module its width."""

    out_features: int


class Fusion(nn.Module):
    """Combines several streams (a mapping name -> tensor, or a sequence) into one."""
