"""DFR-Net's training-time augmentation and the trainer that binds it to each fold's normaliser
(kept out of ``plugin.py``, which loads without torch)."""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from mercore import FoldData, StageContext, SupervisedTrainer


class FlipCropAugment:
    """Horizontal flip and pad-and-crop, drawn per sample and applied identically to all of a
    sample's streams; a flipped flow map has its horizontal component u mirrored.

    Args:
        flip: probability of a horizontal flip.
        crop_pad: replicate-padding as a fraction of the map size; the crop back to the original
            size is a random translation of up to that many pixels (0 turns it off).
        flow_streams: streams whose channel 0 is u (mirrored when flipped).

    A mirror maps u to ``2 c - u`` about the value c that its input kind keeps in place: 0 for
    flow in pixels, 0.5 for a release map min-max scaled to [0, 1] (where ``-u`` becomes
    ``1 - u``). The trainer hands over batches already normalised per channel
    (``data.normalize``), so c is taken in normalised units: :meth:`bind` reads it from
    ``StageContext.flow_centres``; unbound, c = 0.
    """

    def __init__(self, flip: float = 0.5, crop_pad: float = 0.0625, flow_streams: tuple[str, ...] = ("flow",)) -> None:
        if not 0.0 <= float(flip) <= 1.0 or float(crop_pad) < 0:
            raise ValueError(f"augment.flip must be in [0, 1] and augment.crop_pad >= 0, got {flip}, {crop_pad}")
        self.flip, self.crop_pad, self.flow_streams = float(flip), float(crop_pad), tuple(flow_streams)
        self.u_centre: dict[str, float] = {}

    def bind(self, flow_centres: Mapping[str, float]) -> "FlipCropAugment":
        """Take each flow stream's mirror centre in the trainer's units (``StageContext.flow_centres``)."""
        missing = [s for s in self.flow_streams if s not in flow_centres]
        if missing:
            raise ValueError(f"augment.flow_streams {missing} are not flow maps of this run "
                             f"(flow streams: {sorted(flow_centres)})")
        self.u_centre = {s: float(flow_centres[s]) for s in self.flow_streams}
        return self

    def __call__(self, inputs: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        first = next(iter(inputs.values()))
        b, size = first.shape[0], first.shape[-1]
        flips = torch.rand(b, generator=generator) < self.flip  # (B,)
        pad = int(round(self.crop_pad * size))
        offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator) if pad else None  # (B, 2)
        out = {}
        for name, x in inputs.items():  # x: (B, C, H, W)
            if x.shape[-1] != size or x.shape[-2] != first.shape[-2]:
                raise ValueError(f"augment expects all streams at one size; {name!r} is {tuple(x.shape)}")
            m = flips.to(x.device).view(b, 1, 1, 1)
            x = torch.where(m, x.flip(-1), x)
            if name in self.flow_streams:  # mirrored motion points the other way: u -> 2 c - u
                x = x.clone()
                c = self.u_centre.get(name, 0.0)
                x[:, 0] = torch.where(m[:, 0], 2 * c - x[:, 0], x[:, 0])
            if pad:
                h, w = x.shape[-2:]
                padded = nn.functional.pad(x, (pad, pad, pad, pad), mode="replicate")  # (B, C, H+2p, W+2p)
                x = torch.stack([padded[i, :, oy:oy + h, ox:ox + w]
                                 for i, (oy, ox) in enumerate(offsets.tolist())])  # (B, C, H, W)
            out[name] = x
        return out


class DFRNetTrainer(SupervisedTrainer):
    """``SupervisedTrainer`` that first binds the augmentation to the fold's flow centres, so a
    flipped flow map is exactly the normalised map of the mirrored motion."""

    def fit(self, model: nn.Module, data: FoldData, ctx: StageContext) -> nn.Module:
        if isinstance(self.augment, FlipCropAugment):
            self.augment.bind(ctx.flow_centres)
        return super().fit(model, data, ctx)
