"""Perturbation training (PT; Zhao et al., RRMFNet + PT, Cognitive Computation): every ``every``
epochs a perturbation phase of ``length`` epochs, during which every training batch is perturbed
by colour jitter, Gaussian noise, horizontal flipping and random masking (each switchable,
Fig. 13 of the paper ablates them one by one).

Any method gets PT through its ``train.perturbation`` config; ``SupervisedTrainer`` asks
:meth:`PerturbationTraining.active` at each epoch and passes the batches of an active epoch
through :meth:`PerturbationTraining.__call__`.

Streams are typed by name: ``image_streams`` (photometric and geometric ops) and
``flow_streams`` (geometric ops; a flipped flow map has its horizontal component u mirrored about
the value that stands for no horizontal motion: ``u -> 2 c - u``, with ``c`` from
``StageContext.flow_centres``: 0 for flow in pixels, 0.5 for a min-max scaled release map, the
normalised value of either when the method standardises its inputs).
Streams named in neither list pass unchanged. All draws come from the trainer's generator, per
sample, so a run repeats exactly; geometric draws are shared by all streams of a sample.

The ops work in the units the batches have: images in [0, 1] and flow in pixels or [0, 1] when
the method does not normalise its inputs (``data.normalize: false``). The zero used by masking is
zero motion only for flow in pixels.

Schedule (0-based epochs): active iff ``epoch >= every`` and ``epoch % every < length``; with
``every: 20, length: 1`` these are epochs 20, 40, 60, ... (the 21st, 41st, ... epoch): Delta_t
clean epochs, one perturbed epoch, and so on.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Literal, Mapping

import torch

from ..interfaces import Trainer
from ..settings import NonNegativeFloat, NonNegativeInt, PositiveInt, Probability, Settings


@dataclass(kw_only=True)
class ColorJitter(Settings):
    """Random brightness, contrast and saturation factors in ``[1 - s, 1 + s]`` (torchvision's
    ColorJitter, fixed order), on image streams only; saturation needs 3 channels."""

    enabled: bool
    p: Probability
    brightness: Probability
    contrast: Probability
    saturation: NonNegativeFloat
    clamp: bool  # images in [0, 1]; false for normalised image streams


@dataclass(kw_only=True)
class GaussianNoise(Settings):
    """Additive zero-mean Gaussian noise of standard deviation ``sigma`` (input units).
    ``streams``: ``all`` (image and flow streams) or ``image``."""

    enabled: bool
    p: Probability
    sigma: NonNegativeFloat
    streams: Literal["all", "image"]


@dataclass(kw_only=True)
class HorizontalFlip(Settings):
    """Mirror left-right with probability ``p``, all streams of a sample together; a flow
    stream's u -> 2 c - u about its mirror centre c."""

    enabled: bool
    p: Probability
    u_channel: NonNegativeInt  # the channel of a flow stream holding u


@dataclass(kw_only=True)
class RandomMask(Settings):
    """Zero ``boxes`` rectangles (each ``area / boxes`` of the map, the map's aspect ratio, at
    uniform positions; boxes may overlap) at the same place in all streams of a sample."""

    enabled: bool
    p: Probability
    area: Probability
    boxes: PositiveInt


#: the switchable ops by their config key
OPS: dict[str, type[Settings]] = {"color_jitter": ColorJitter, "gaussian_noise": GaussianNoise,
                                  "hflip": HorizontalFlip, "random_mask": RandomMask}


@dataclass(kw_only=True)
class PerturbationTraining(Settings):
    """The PT schedule and its four ops, from a trainer's ``perturbation`` section (defaults in
    ``mercore/configs/trainers.yaml``).

    Args:
        enabled: whether the trainer perturbs at all.
        every: Delta_t, epochs between the starts of two perturbation phases (paper: 20).
        length: epochs per phase (1: the paper speaks of perturbations at an interval).
        image_streams, flow_streams: stream names by kind (see the module docstring).
        color_jitter, gaussian_noise, hflip, random_mask: the ops, each with ``enabled``.
    """

    section = "train.perturbation"
    defaults_key = "perturbation"

    enabled: bool
    every: PositiveInt
    length: PositiveInt
    image_streams: tuple[str, ...]
    flow_streams: tuple[str, ...]
    color_jitter: ColorJitter
    gaussian_noise: GaussianNoise
    hflip: HorizontalFlip
    random_mask: RandomMask

    def __post_init__(self) -> None:
        if self.length > self.every:
            raise ValueError(f"length ({self.length}) must be <= every ({self.every})")

    def check_streams(self, streams: Iterable[str]) -> None:
        """Refuse a stream name the method does not feed (a typo would perturb nothing, silently);
        the names are read only when perturbation training is enabled (the core's defaults name
        streams, ``apex`` and ``flow``, that not every method has)."""
        if not self.enabled:
            return
        for key in ("image_streams", "flow_streams"):
            unknown = sorted(set(getattr(self, key)) - set(streams))
            if unknown:
                raise ValueError(f"{self.section}.{key} names {unknown}, which the method has no input stream of; "
                                 f"its streams: {', '.join(sorted(streams))}")

    def active(self, epoch: int) -> bool:
        """Whether 0-based ``epoch`` belongs to a perturbation phase."""
        return epoch >= self.every and epoch % self.every < self.length

    # --- the ops ------------------------------------------------------------------------------

    def __call__(self, inputs: dict[str, torch.Tensor], generator: torch.Generator,
                 flow_centres: Mapping[str, float] | None = None) -> dict[str, torch.Tensor]:
        """Perturb one training batch ``{stream: (B, C, H, W)}``; returns new tensors.
        ``flow_centres``: each flow stream's mirror centre (``StageContext.flow_centres``); without
        it u mirrors about 0 (flow in pixels)."""
        kinds = {s: ("image" if s in self.image_streams else "flow") for s in inputs
                 if s in self.image_streams or s in self.flow_streams}
        if flow_centres is not None and self.hflip.enabled:
            unknown = [s for s, kind in kinds.items() if kind == "flow" and s not in flow_centres]
            if unknown:
                raise ValueError(f"train.perturbation.flow_streams {unknown} are not flow maps (their feature "
                                 f"extractor names no mirror centre), so a flip cannot mirror their u")
        if not kinds:
            raise ValueError(f"train.perturbation names none of the batch's streams {sorted(inputs)} "
                             f"(image_streams={list(self.image_streams)}, flow_streams={list(self.flow_streams)})")
        out = dict(inputs)
        first = inputs[next(iter(kinds))]
        b, (h, w) = first.shape[0], first.shape[-2:]
        for s in kinds:
            if inputs[s].dim() != 4 or inputs[s].shape[0] != b or inputs[s].shape[-2:] != (h, w):
                raise ValueError(f"perturbation expects (B, C, H, W) streams of one size; {s!r} is "
                                 f"{tuple(inputs[s].shape)}, {next(iter(kinds))!r} is {tuple(first.shape)}")
        # draws in a fixed order, independent of which ops are on, so switching one op off
        # leaves the others' draws unchanged
        jitter = self._draw_jitter(b, generator)
        noise_on = torch.rand(b, generator=generator) < self.gaussian_noise.p  # (B,)
        noise_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        flips = torch.rand(b, generator=generator) < self.hflip.p  # (B,)
        mask = self._draw_mask(b, h, w, generator)  # (B, 1, H, W) bool, True = masked
        noise_gen = torch.Generator().manual_seed(noise_seed)
        for s, kind in kinds.items():
            x = inputs[s]
            if kind == "image" and self.color_jitter.enabled:
                x = self._jitter(x, *(t.to(x.device) for t in jitter))
            if self.gaussian_noise.enabled and (kind == "image" or self.gaussian_noise.streams == "all"):
                noise = torch.randn(x.shape, generator=noise_gen) * self.gaussian_noise.sigma  # (B, C, H, W)
                x = x + noise.to(x.device, x.dtype) * noise_on.to(x.device).view(b, 1, 1, 1)
            if self.hflip.enabled:
                centre = (flow_centres or {}).get(s, 0.0) if s in self.flow_streams else None
                x = self._flip(x, flips.to(x.device), centre)
            if self.random_mask.enabled:
                x = x.masked_fill(mask.to(x.device), 0.0)
            out[s] = x
        return out

    def _draw_jitter(self, b: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cj = self.color_jitter
        on = (torch.rand(b, generator=generator) < cj.p).float()  # (B,)

        def factor(strength: float) -> torch.Tensor:  # (B,) in [1 - s, 1 + s]; 1 where off
            u = torch.rand(b, generator=generator) * 2 - 1
            return 1 + on * strength * u

        return factor(cj.brightness), factor(cj.contrast), factor(cj.saturation)

    def _jitter(self, x: torch.Tensor, bright: torch.Tensor, contrast: torch.Tensor, sat: torch.Tensor) -> torch.Tensor:
        view = (-1, 1, 1, 1)
        x = x * bright.view(view).to(x.dtype)  # brightness: scale towards black
        gray = self._gray(x)  # (B, 1, H, W)
        x = (x - gray.mean(dim=(1, 2, 3), keepdim=True)) * contrast.view(view).to(x.dtype) \
            + gray.mean(dim=(1, 2, 3), keepdim=True)  # contrast: scale about the mean grey level
        if x.shape[1] == 3:  # saturation: blend with the grey image
            gray = self._gray(x)
            x = (x - gray) * sat.view(view).to(x.dtype) + gray
        return x.clamp(0.0, 1.0) if self.color_jitter.clamp else x

    @staticmethod
    def _gray(x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 3:
            return x.mean(dim=1, keepdim=True)
        r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
        return 0.299 * r + 0.587 * g + 0.114 * b  # ITU-R 601 luma, as torchvision

    def _flip(self, x: torch.Tensor, flips: torch.Tensor, centre: float | None) -> torch.Tensor:
        """Mirror the samples ``flips`` selects; a flow stream (``centre`` not None) also has its
        u mirrored about ``centre``: the motion points the other way horizontally."""
        m = flips.view(-1, 1, 1, 1)
        y = torch.where(m, x.flip(-1), x)
        if centre is not None:
            c = self.hflip.u_channel
            y = y.clone()
            y[:, c] = torch.where(m[:, 0], 2 * centre - y[:, c], y[:, c])
        return y

    def _draw_mask(self, b: int, h: int, w: int, generator: torch.Generator) -> torch.Tensor:
        rm = self.random_mask
        on = torch.rand(b, generator=generator) < rm.p  # (B,)
        side = math.sqrt(rm.area / rm.boxes)
        bh, bw = min(h, round(h * side)), min(w, round(w * side))
        ys = torch.randint(0, h - bh + 1, (b, rm.boxes), generator=generator)  # (B, boxes)
        xs = torch.randint(0, w - bw + 1, (b, rm.boxes), generator=generator)
        rows, cols = torch.arange(h).view(1, 1, h, 1), torch.arange(w).view(1, 1, 1, w)
        y0, x0 = ys.view(b, rm.boxes, 1, 1), xs.view(b, rm.boxes, 1, 1)
        inside = (rows >= y0) & (rows < y0 + bh) & (cols >= x0) & (cols < x0 + bw)  # (B, boxes, H, W)
        return (inside.any(dim=1, keepdim=True) & on.view(b, 1, 1, 1))  # (B, 1, H, W)


__all__ = ["OPS", "ColorJitter", "GaussianNoise", "HorizontalFlip", "PerturbationTraining", "RandomMask"]


def perturbations(stage: Any) -> Iterator[PerturbationTraining]:
    """The perturbation schedules a trainer stage holds, also inside a trainer it wraps (a
    dataclass field), so that the runner can check their stream names before any work."""
    if isinstance(stage, PerturbationTraining):
        yield stage
    elif dataclasses.is_dataclass(stage) and not isinstance(stage, type):
        for f in dataclasses.fields(stage):
            value = getattr(stage, f.name, None)
            if isinstance(value, PerturbationTraining) or isinstance(value, Trainer):
                yield from perturbations(value)
