"""The STSTNet network: three shallow conv streams on a 28x28 u/v/strain map, one linear layer."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from mercore import DeclaredFeatures, PositiveInt, Probability, Settings, SupervisedTrainer


class Stream(nn.Module):
    """One stream: 3x3 conv (padding 1) -> ReLU [-> BatchNorm] -> max-pool 3x3 / 3 (padding 1) [-> dropout].

    BatchNorm after the ReLU and dropout after the pooling are what the public PyTorch STSTNet
    code does; the paper names only conv, ReLU and pooling (``batch_norm``/``dropout`` switch them).
    """

    def __init__(self, in_channels: int, filters: int, batch_norm: bool = True, dropout: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, filters, 3, padding=1), nn.ReLU()]
        if batch_norm:
            layers.append(nn.BatchNorm2d(filters))
        layers.append(nn.MaxPool2d(3, stride=3, padding=1))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, 28, 28) -> (B, filters, 10, 10)
        return self.body(x)


class STSTNetModel(nn.Module):
    """Three parallel streams, concatenated, average-pooled 2x2, flattened, one linear layer.

    At 28x28 input: streams give 10x10 maps, 3 + 5 + 8 = 16 channels, pooling gives 5x5, so the
    linear layer reads 16 * 5 * 5 = 400 features.
    """

    def __init__(self, num_classes: int, filters: Sequence[int] = (3, 5, 8), in_channels: int = 3, size: int = 28,
                 batch_norm: bool = True, dropout: float = 0.5, stream: str = "flow") -> None:
        super().__init__()
        self.stream = stream  # the batch key the model reads
        self.streams = nn.ModuleList(Stream(in_channels, f, batch_norm, dropout) for f in filters)
        self.pool = nn.AvgPool2d(2)
        side = (size + 2 - 3) // 3 + 1  # after the 3x3 / 3 max-pool with padding 1
        self.fc = nn.Linear(sum(filters) * (side // 2) ** 2, num_classes)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        x = batch[self.stream]  # (B, 3, 28, 28)
        x = torch.cat([s(x) for s in self.streams], dim=1)  # (B, 16, 10, 10)
        x = self.pool(x).flatten(1)  # (B, 400)
        return self.fc(x)  # (B, num_classes)


@dataclass(frozen=True, kw_only=True)
class STSTNetConfig(Settings):
    """The ``model`` section, checked before any work: ``filters: "abc"`` once reached torch as a
    TypeError, ``[]`` failed inside the fold workers and ``[0, 0, 0]`` after the features were made."""

    section = "model"

    filters: tuple[PositiveInt, ...]  # one stream per entry
    batch_norm: bool
    dropout: Probability

    def __post_init__(self) -> None:
        if not self.filters:
            raise ValueError("model.filters needs at least one stream's filter count, e.g. [3, 5, 8]")


@dataclass(frozen=True, kw_only=True)
class STSTNetSettings(Settings):
    """STSTNet's sections of a resolved config (the method's ``config_class``), each typed: its
    input stream, its network and its one supervised stage. The core checks them before any work."""

    section = ""  # the top level: each field is a section

    features: DeclaredFeatures
    model: STSTNetConfig
    train: SupervisedTrainer

    def __post_init__(self) -> None:
        if self.features.size is None:
            raise ValueError("features.size: STSTNet needs the side of its square map, e.g. 28")


def build_model(model_cfg: Mapping[str, Any] | STSTNetConfig, num_classes: int, size: int = 28) -> STSTNetModel:
    """The model from the config's ``model`` section (a ConfigError names a bad key)."""
    cfg = model_cfg if isinstance(model_cfg, STSTNetConfig) else STSTNetConfig.from_config(model_cfg)
    return STSTNetModel(num_classes, filters=cfg.filters, size=size, batch_norm=cfg.batch_norm, dropout=cfg.dropout)
