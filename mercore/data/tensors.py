"""In-memory tensors of one split of one fold: these corpora are small enough to preload."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from ..sample import Sample


@dataclass
class TensorSet:
    """Feature streams (name -> tensor with samples first), labels and the samples behind them."""

    inputs: dict[str, torch.Tensor]
    labels: torch.Tensor
    samples: list[Sample]

    def __post_init__(self) -> None:
        n = len(self.samples)
        for name, t in self.inputs.items():
            if t.shape[0] != n:
                raise ValueError(f"stream {name!r} has {t.shape[0]} rows for {n} samples")
        if self.labels.shape[0] != n:
            raise ValueError(f"{self.labels.shape[0]} labels for {n} samples")

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def groups(self) -> list[str]:
        return [s.group for s in self.samples]

    def subset(self, index: Sequence[int] | torch.Tensor) -> "TensorSet":
        idx = torch.as_tensor(index, dtype=torch.long)
        return TensorSet({k: v[idx] for k, v in self.inputs.items()}, self.labels[idx],
                         [self.samples[i] for i in idx.tolist()])

    def to(self, device: torch.device) -> "TensorSet":
        return TensorSet({k: v.to(device) for k, v in self.inputs.items()}, self.labels.to(device), self.samples)

    def batches(self, batch_size: int, *, shuffle: bool = False,
                generator: torch.Generator | None = None, drop_last: bool = False
                ) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        """Yield ``(inputs, labels)`` mini-batches; shuffling uses ``generator`` so it repeats."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            if drop_last and len(idx) < batch_size:
                break
            idx_dev = idx.to(self.labels.device)
            yield {k: v[idx_dev] for k, v in self.inputs.items()}, self.labels[idx_dev]


@dataclass
class FoldData:
    """One LOSO fold: training subjects (split into train/val) and the held-out subject(s)."""

    train: TensorSet
    val: TensorSet | None
    test: TensorSet
    test_groups: tuple[str, ...]
