"""Per-channel input normalisation fitted on a fold's training samples only."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Normalizer:
    """Mean/std per channel (dim 1) of each stream, from the training split of one fold."""

    stats: dict[str, tuple[torch.Tensor, torch.Tensor]]

    @classmethod
    def fit(cls, inputs: dict[str, torch.Tensor]) -> "Normalizer":
        stats = {}
        for name, x in inputs.items():
            dims = [d for d in range(x.dim()) if d != 1]
            mean = x.mean(dim=dims, keepdim=True)[0]
            std = x.std(dim=dims, keepdim=True)[0].clamp(min=1e-6)
            stats[name] = (mean, std)
        return cls(stats)

    def __call__(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if name not in self.stats:
            return x
        mean, std = self.stats[name]
        return (x - mean.to(x.device)) / std.to(x.device)

    def apply(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: self(k, v) for k, v in inputs.items()}


class Identity:
    def __call__(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return x

    def apply(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return inputs
