"""Per-channel input normalisation fitted on a fold's training samples only.

A fold's statistics travel with its model (``norm.pt`` beside ``model.pt``), so that ``mer
predict`` feeds a new clip exactly what the fold's model was trained on.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from ..io import atomic_torch_save, load_checkpoint


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

    def state(self) -> dict[str, dict[str, torch.Tensor]]:
        """``{stream: {"mean", "std"}}``: tensors only, so it loads with ``weights_only=True``."""
        return {name: {"mean": mean, "std": std} for name, (mean, std) in self.stats.items()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "Normalizer":
        """The inverse of :meth:`state`; ValueError when ``state`` is not of that form."""
        try:
            stats = {name: (s["mean"], s["std"]) for name, s in state.items()}
        except (AttributeError, IndexError, KeyError, TypeError):
            raise ValueError("not normalisation statistics ({stream: {mean, std}})") from None
        if not all(isinstance(t, torch.Tensor) for pair in stats.values() for t in pair):
            raise ValueError("not normalisation statistics ({stream: {mean, std}} of tensors)")
        return cls(stats)

    def save(self, path: Path | str) -> None:
        atomic_torch_save(path, self.state())

    @classmethod
    def load(cls, path: Path | str) -> "Normalizer":
        return cls.from_state(load_checkpoint(path))


class Identity:
    """The normaliser of a run with ``data.normalize: false``."""

    def __call__(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return x

    def apply(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return inputs


def mirror_value(normalize: "Normalizer | Identity", stream: str, centre: float) -> float:
    """``centre`` (a value of channel 0 of ``stream``, see ``FeatureExtractor.mirror_centre``) in
    the units ``normalize`` gives the trainer: a mirror then maps ``z -> 2 * value - z`` there too,
    since the normalisation is affine per channel."""
    return float(normalize(stream, torch.full((1, 1, 1, 1), float(centre))).reshape(-1)[0])
