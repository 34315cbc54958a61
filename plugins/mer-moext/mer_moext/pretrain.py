"""MoExt pre-training (Section 3.1): apex reconstruction with contrastive losses on micro + macro pairs.

Micro pairs are the fold's training samples (``data.train``). Macro pairs come from a macro
corpus (the synthetic corpus's ``macro/`` clips or CAS(ME)^3 Part A macro clips) with the 5th
frame as pseudo-apex, filtered so that only the fold's training subjects (or people of a corpus
that is not being evaluated at all) take part: the test subject never does.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from mercore import FeatureRequest, FoldData, LoadOptions, Sample, StageContext, SupervisedTrainer, Trainer, write_image
from mercore.training.supervised import build_optimizer

from .losses import onset_apex_loss, reconstruction_loss, shape_texture_loss
from .model import MoExtModel

MACRO_SOURCES = ("auto", "synthetic", "casme3", "none")
VIEW_OPS = ("noise", "contrast", "grayscale")
PREVIEW_FILE = "moext_reconstruction.png"


# ----------------------------------------------------------------------------- augmentation
class MirrorRotate:
    """Mirroring and rotation in [-deg, deg] (Section 4.1.2), one draw per sample applied to all
    of its streams alike (onset and apex must stay aligned). Border pixels are replicated."""

    def __init__(self, flip: float = 0.5, rotate: float = 10.0) -> None:
        if not 0.0 <= float(flip) <= 1.0 or float(rotate) < 0:
            raise ValueError(f"augment.flip must be in [0, 1] and augment.rotate >= 0, got {flip}, {rotate}")
        self.flip, self.rotate = float(flip), float(rotate)

    def __call__(self, inputs: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        first = next(iter(inputs.values()))
        b = first.shape[0]
        sign = torch.where(torch.rand(b, generator=generator) < self.flip, -1.0, 1.0)  # (B,)
        angle = (torch.rand(b, generator=generator) * 2 - 1) * math.radians(self.rotate)  # (B,)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # output (x, y) samples input at R(x * sign, y): mirror, then rotate
        theta = torch.stack([torch.stack([cos * sign, -sin, torch.zeros(b)], 1),
                             torch.stack([sin * sign, cos, torch.zeros(b)], 1)], 1)  # (B, 2, 3)
        out = {}
        for name, x in inputs.items():  # (B, C, H, W)
            grid = nn.functional.affine_grid(theta.to(x), list(x.shape), align_corners=False)
            out[name] = nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return out


@dataclass
class ViewExpansion:
    """Expansion sets (Fig. 5): the original frame plus m - 1 views, each made by one operation
    drawn without replacement per sample from ``ops``; onset and apex of a sample get the same
    operation with the same strength (noise is drawn independently per frame)."""

    views: int = 3
    ops: Sequence[str] = VIEW_OPS
    noise_std: float = 0.05
    contrast: Sequence[float] = (1.2, 1.8)

    def __post_init__(self) -> None:
        bad = [o for o in self.ops if o not in VIEW_OPS]
        if bad or self.views < 1 or self.views - 1 > len(self.ops):
            raise ValueError(f"pretrain.views - 1 = {self.views - 1} operations drawn from {list(self.ops)} "
                             f"(known: {VIEW_OPS}); need views >= 1 and enough distinct operations")

    def __call__(self, onset: torch.Tensor, apex: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(B, 3, H, W) x2 in [0, 1] -> (B, 2, views, 3, H, W), view 0 the originals."""
        pair = torch.stack([onset, apex], 1)  # (B, 2, 3, H, W)
        b = pair.shape[0]
        out = [pair]
        picks = torch.stack([torch.randperm(len(self.ops), generator=generator)[: self.views - 1] for _ in range(b)]) \
            if self.views > 1 else torch.empty(b, 0, dtype=torch.long)  # (B, views - 1)
        for v in range(self.views - 1):
            view = pair.clone()
            for op_index, op in enumerate(self.ops):
                rows = (picks[:, v] == op_index).nonzero().flatten().tolist()
                if rows:
                    view[rows] = self.apply(op, pair[rows], generator)
            out.append(view)
        return torch.stack(out, 2)

    def apply(self, op: str, pair: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One operation on (k, 2, 3, H, W) pairs."""
        k = pair.shape[0]
        if op == "noise":
            noise = torch.randn(pair.shape, generator=generator).to(pair) * self.noise_std
            return (pair + noise).clamp(0, 1)
        if op == "contrast":
            lo, hi = (float(c) for c in self.contrast)
            c = (lo + (hi - lo) * torch.rand(k, generator=generator)).to(pair).view(k, 1, 1, 1, 1)
            mean = pair.mean((2, 3, 4), keepdim=True)
            return ((pair - mean) * c + mean).clamp(0, 1)
        gray = (0.299 * pair[:, :, 0] + 0.587 * pair[:, :, 1] + 0.114 * pair[:, :, 2])[:, :, None]  # (k, 2, 1, H, W)
        return gray.expand_as(pair).clone()


# ----------------------------------------------------------------------------- macro data
def synthetic_macro_samples(micro: Sequence[Sample]) -> list[Sample]:
    """The macro clips of the synthetic corpus the micro samples were read from.

    The corpus root is found from a frame path (``root/CASME2_RAW_selected/subNN/clip/imgN.jpg``);
    a root written with ``macro=True`` has ``root/macro``; otherwise the macro corpus is generated
    into the same cache with the same generator parameters (same seed -> same faces and subjects).
    """
    from mercore.data.synthetic import SyntheticDataset

    framed = [s for s in micro if s.frames]
    if not framed:
        raise ValueError("pretrain.macro_source=synthetic needs micro samples with frames to locate the corpus")
    root = Path(framed[0].frames[0]).parents[3]
    dataset = SyntheticDataset()
    if (root / "macro").is_dir():
        return dataset.load(root, LoadOptions(task="sde5", extra={"kind": "macro"})).samples
    meta = root / "generator.json"
    if not meta.is_file() or root.parent.name != "synthetic":
        raise ValueError(f"synthetic corpus at {root} has no macro/ clips and is not a cached corpus; regenerate it "
                         f"with macro clips (`mer synth --macro`) or set pretrain.macro_source=none")
    params = json.loads(meta.read_text())["params"]
    extra = {k: params[k] for k in SyntheticDataset.GENERATOR_KEYS if k in params and k != "macro"}
    return dataset.load(None, LoadOptions(task="sde5", cache_dir=root.parents[1], extra={**extra, "kind": "macro"})).samples


def casme3_macro_samples(root: str | Path | None) -> list[Sample]:
    """CAS(ME)^3 Part A macro clips through the registered ``casme3`` adapter (``kind: macro``)."""
    from mercore.plugins import load_registry

    if root is None:
        raise ValueError("MoExt pre-training on CAS(ME)^3 macro clips needs pretrain.macro_root (the CAS(ME)^3 folder); "
                         "or set pretrain.macro_source=none (Table 7 'w/o macro') or synthetic")
    dataset = load_registry().dataset("casme3")
    return dataset.load(Path(root).expanduser(), LoadOptions(extra={"kind": "macro"})).samples


def filter_macro(samples: Sequence[Sample], data: FoldData) -> list[Sample]:
    """Keep macro clips of the fold's training subjects, or of a corpus the fold does not evaluate.

    A clip of a subject from the evaluated corpora who is not in ``data.train`` (the test subject,
    a validation subject, a subject left out of the run) is dropped.
    """
    train_groups = set(data.train.groups)
    held_out = set(data.test_groups) | set(data.test.groups) | (set(data.val.groups) if data.val is not None else set())
    evaluated = {s.dataset for part in (data.train, data.val, data.test) if part is not None for s in part.samples}
    kept = [s for s in samples if s.group not in held_out and (s.group in train_groups or s.dataset not in evaluated)]
    assert not {s.group for s in kept} & set(data.test_groups), "test subject in the pre-training set"
    return kept


def pseudo_apex(sample: Sample, frame: int) -> Sample:
    """The macro clip with its ``frame``-th frame (1-based, counted from the onset) as apex."""
    onset = max(sample.onset, 0)
    return dataclasses.replace(sample, onset=onset, apex=min(onset + frame - 1, len(sample.frames) - 1))


# ----------------------------------------------------------------------------- the stage
@dataclass
class MoExtPretrainer(Trainer):
    """Pre-training stage: L = L_re + a1 L_st + a2 L_ss on micro (+ macro) onset/apex pairs.

    ``requests`` are the method's ``onset``/``apex`` feature requests (the macro frames must be
    computed exactly as the micro ones). After training, a PNG grid (onset | apex | reconstruction)
    of a few training pairs goes to ``ctx.work_dir``.
    """

    enabled: bool = True
    optimizer: str = "adam"
    lr: float = 1e-4
    weight_decay: float = 1e-4
    momentum: float = 0.9
    epochs: int = 30
    batch_size: int = 20
    a1: float = 0.1
    a2: float = 0.1
    margin: float = 0.3
    views: int = 3
    view_ops: Sequence[str] = VIEW_OPS
    noise_std: float = 0.05
    contrast: Sequence[float] = (1.2, 1.8)
    macro_source: str = "auto"
    macro_root: str | None = None
    macro_frame: int = 5
    preview: int = 4
    requests: Mapping[str, FeatureRequest] = field(default_factory=dict)
    augment: Callable[[dict[str, torch.Tensor], torch.Generator], dict[str, torch.Tensor]] | None = None
    stage_name: str = "pretrain"

    name = "moext-pretrain"

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], **overrides: Any) -> "MoExtPretrainer":
        known = {f.name for f in dataclasses.fields(cls)} - {"requests", "augment"}
        unknown = set(cfg) - known
        if unknown:
            raise ValueError(f"unknown pretrain option(s) {sorted(unknown)}; valid: {sorted(known)}")
        stage = cls(**dict(cfg), **overrides)
        if stage.macro_source not in MACRO_SOURCES:
            raise ValueError(f"pretrain.macro_source must be one of {MACRO_SOURCES}, got {stage.macro_source!r}")
        if not 0 <= stage.margin:
            raise ValueError(f"pretrain.margin must be >= 0, got {stage.margin}")
        return stage

    # data ------------------------------------------------------------------------------------
    def macro_samples(self, data: FoldData) -> list[Sample]:
        """Macro clips of the configured source, filtered to the fold, with their pseudo-apex."""
        source = self.macro_source
        if source == "auto":
            source = "synthetic" if all(s.dataset == "synthetic" for s in data.train.samples) else "casme3"
        if source == "none":
            return []
        raw = synthetic_macro_samples(data.train.samples) if source == "synthetic" else casme3_macro_samples(self.macro_root)
        return [pseudo_apex(s, self.macro_frame) for s in filter_macro(raw, data)]

    def pairs(self, data: FoldData, ctx: StageContext) -> tuple[torch.Tensor, torch.Tensor, int]:
        """All (onset, apex) pairs: micro first, then macro; and the number of macro pairs."""
        onset, apex = data.train.inputs["onset"].cpu(), data.train.inputs["apex"].cpu()
        macro = self.macro_samples(data)
        if macro:
            if ctx.extract is None:
                raise RuntimeError("macro pre-training needs StageContext.extract to compute the macro frames")
            onset = torch.cat([onset, ctx.normalize("onset", ctx.extract(self.requests["onset"], macro))])
            apex = torch.cat([apex, ctx.normalize("apex", ctx.extract(self.requests["apex"], macro))])
        return onset, apex, len(macro)

    # training --------------------------------------------------------------------------------
    def losses(self, model: MoExtModel, onset: torch.Tensor, apex: torch.Tensor,
               expansion: ViewExpansion, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The three losses and their sum on one batch of (B, 3, H, W) pairs."""
        views = expansion(onset.cpu(), apex.cpu(), generator).to(onset)  # (B, 2, m, 3, H, W)
        out = model.pretrain_outputs(views)
        b, _, m = views.shape[:3]
        s, t = out["shape"].reshape(b, 2 * m, -1), out["texture"].reshape(b, 2 * m, -1)  # (B, 2m, d), onset views first
        f_s, f_t = model.projection(s), model.projection(t)
        f_anchor = model.projection(s.mean((0, 1)))  # f(S_bar)
        is_apex = torch.arange(2 * m, device=s.device) >= m
        l_re = reconstruction_loss(out["recon"], apex)
        l_st = shape_texture_loss(f_s, f_t, f_anchor, self.margin)
        l_ss = onset_apex_loss(f_s, is_apex, self.margin)
        return {"loss": l_re + self.a1 * l_st + self.a2 * l_ss, "l_re": l_re, "l_st": l_st, "l_ss": l_ss}

    def fit(self, model: nn.Module, data: FoldData, ctx: StageContext) -> nn.Module:
        if not self.enabled:
            return model
        if not isinstance(model, MoExtModel) or not model.has_pretraining_modules:
            raise TypeError("MoExt pre-training needs a MoExtModel with its texture branch, R and f")
        device = ctx.device
        model.to(device)
        onset, apex, n_macro = self.pairs(data, ctx)
        n = len(onset)
        ctx.log_metric(f"{self.stage_name}/micro_pairs", float(len(data.train)), 0)
        ctx.log_metric(f"{self.stage_name}/macro_pairs", float(n_macro), 0)
        expansion = ViewExpansion(self.views, tuple(self.view_ops), self.noise_std, tuple(self.contrast))
        opt = build_optimizer([p for p in model.parameters() if p.requires_grad], self.optimizer, self.lr,
                              self.weight_decay, self.momentum)
        gen = ctx.generator(offset=31)
        bar = tqdm(range(self.epochs), desc=f"{ctx.fold} {self.stage_name}", leave=False, disable=not ctx.progress)
        for epoch in bar:
            model.train()
            sums: dict[str, float] = {}
            for idx in batch_indices(n, self.batch_size, gen):
                o, a = onset[idx].to(device), apex[idx].to(device)
                if self.augment is not None:
                    aug = self.augment({"onset": o, "apex": a}, gen)
                    o, a = aug["onset"], aug["apex"]
                terms = self.losses(model, o, a, expansion, gen)
                opt.zero_grad(set_to_none=True)
                terms["loss"].backward()
                opt.step()
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + v.item() * len(idx)
            for k, v in sums.items():
                ctx.log_metric(f"{self.stage_name}/{k}", v / n, epoch)
            bar.set_postfix(l_re=f"{sums.get('l_re', 0.0) / n:.4f}")
        if self.preview > 0:
            preview = Path(ctx.work_dir) / PREVIEW_FILE
            save_preview(model, onset[: self.preview], apex[: self.preview], device, preview)
            ctx.log_artifact(preview)  # an image artifact of the fold's MLflow run
        return model


def batch_indices(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A shuffled epoch in batches; a last batch of one joins the previous one (BatchNorm on the
    d x 1 x 1 motion maps needs two samples)."""
    order = torch.randperm(n, generator=generator)
    out = list(order.split(batch_size))
    if len(out) > 1 and len(out[-1]) == 1:
        out[-2:] = [torch.cat(out[-2:])]
    return out


@torch.no_grad()
def save_preview(model: MoExtModel, onset: torch.Tensor, apex: torch.Tensor, device: torch.device, path: Path) -> Path:
    """PNG grid, one row per pair: onset | true apex | reconstructed apex."""
    model.eval()
    views = torch.stack([onset, apex], 1)[:, :, None].to(device)  # (k, 2, 1, 3, H, W)
    recon = model.pretrain_outputs(views)["recon"].float().cpu()
    rows = [torch.cat([o, a, r], 2) for o, a, r in zip(onset.cpu(), apex.cpu(), recon)]  # (3, H, 3W) each
    grid = torch.cat(rows, 1).clamp(0, 1).permute(1, 2, 0).numpy()  # (kH, 3W, 3)
    write_image(path, np.ascontiguousarray(grid))
    return path


class ObjectiveTrainer(SupervisedTrainer):
    """Objective learning (Section 3.4): the texture branch, R and f are removed, then
    cross-entropy fine-tuning of shape extractor, motion extractor and classifier."""

    def fit(self, model: nn.Module, data: FoldData, ctx: StageContext) -> nn.Module:
        if isinstance(model, MoExtModel):
            model.drop_pretraining_modules()
        if len(data.train) % self.batch_size == 1 and len(data.train) > 1:
            # a final batch of one cannot pass BatchNorm on 1x1 maps: one sample larger batches
            return dataclasses.replace(self, batch_size=self.batch_size + 1).fit(model, data, ctx)
        return super().fit(model, data, ctx)
