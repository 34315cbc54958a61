"""MoExt pre-training (Section 3.1): apex reconstruction with contrastive losses on micro + macro pairs.

The pairs are the paper's pre-training data (Sec. 4.1.2: CASME II and CAS(ME)^3 part A, micro and
macro expressions): the fold's training clips (``data.train``), the micro clips of the
``micro_sources`` corpora of every emotion (pre-training is self-supervised, so a clip outside the
task's classes still counts), and the macro clips of ``macro_source`` with the 5th frame as
pseudo-apex. On the synthetic corpus the sources are its own clips of every emotion and its macro
clips. Every extra clip is filtered so that only the fold's training subjects (or people of a corpus
that is not being evaluated at all) take part: the test subject never does.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from mercore import (Dataset, FeatureRequest, FoldData, LoadOptions, NonNegativeFloat, NonNegativeInt, Optimisation,
                     PositiveFloat, PositiveInt, Sample, Settings, StageContext, Step, SupervisedTrainer, TensorSet,
                     Trainer, WeightAveraging, runtime, train_epochs, write_image)

from .losses import onset_apex_loss, reconstruction_loss, shape_texture_loss
from .model import MoExtModel

#: What ``auto`` means: the paper's corpora on real data, the corpus's own clips on the synthetic one.
PAPER_MICRO_SOURCES = ("casme2", "casme3")
VIEW_OPS = ("noise", "contrast", "grayscale")
PREVIEW_FILE = "moext_reconstruction.png"
log = logging.getLogger(__name__)


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
class RepeatedSet(TensorSet):
    """A training set passed ``copies`` times per epoch, in one shuffled order: the paper's offline
    augmentation "to ten times the original data size" (Sec. 4.1.2) as an online one, each pass
    with its own mirror and rotation draws, without ten copies of the frames in memory."""

    copies: int = 1

    def to(self, device: torch.device) -> "RepeatedSet":
        return RepeatedSet({k: v.to(device) for k, v in self.inputs.items()}, self.labels.to(device), self.samples,
                           self.copies)

    def batches(self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None,
                drop_last: bool = False) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        n = len(self.samples)
        order = (torch.randperm(n * self.copies, generator=generator) if shuffle else torch.arange(n * self.copies)) % n
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            if drop_last and len(idx) < batch_size:
                break
            idx = idx.to(self.labels.device)
            yield {k: v[idx] for k, v in self.inputs.items()}, self.labels[idx]


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
            raise ValueError(f"pretrain.views - 1 = {self.views - 1} operations drawn from pretrain.view_ops {list(self.ops)} "
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


# ----------------------------------------------------------------------------- extra pre-training data
def synthetic_root(micro: Sequence[Sample]) -> Path:
    """The synthetic corpus folder the micro samples were read from
    (``root/CASME2_RAW_selected/subNN/clip/imgN.jpg``)."""
    framed = [s for s in micro if s.frames]
    if not framed:
        raise ValueError("pre-training on the synthetic corpus needs micro samples with frames to locate the corpus")
    return Path(framed[0].frames[0]).parents[3]


#: a dataset adapter by its registered name (``StageContext.dataset``: the run's registry)
DatasetLookup = Callable[[str], Dataset]


def synthetic_micro_samples(micro: Sequence[Sample], dataset: DatasetLookup) -> list[Sample]:
    """Every micro clip of the synthetic corpus the samples come from, whatever its emotion."""
    options = LoadOptions(task="megc3", extra={"all_emotions": True})
    return dataset("synthetic").load(synthetic_root(micro), options).samples


def synthetic_macro_samples(micro: Sequence[Sample], dataset: DatasetLookup) -> list[Sample]:
    """The macro clips of the synthetic corpus the micro samples were read from.

    A root written with ``macro=True`` has ``root/macro``; otherwise the macro corpus is generated
    into the same cache with the same generator parameters (same seed -> same faces and subjects).
    """
    root = synthetic_root(micro)
    synthetic = dataset("synthetic")
    if (root / "macro").is_dir():
        return synthetic.load(root, LoadOptions(task="sde5", extra={"kind": "macro"})).samples
    meta = root / "generator.json"
    if not meta.is_file() or root.parent.name != "synthetic":
        raise ValueError(f"synthetic corpus at {root} has no macro/ clips and is not a cached corpus; regenerate it "
                         f"with macro clips (`mer synth --macro`) or set pretrain.macro_source=none")
    params = json.loads(meta.read_text())["params"]
    extra = {k: params[k] for k in synthetic.GENERATOR_KEYS if k in params and k != "macro"}
    return synthetic.load(None, LoadOptions(task="sde5", cache_dir=root.parents[1], extra={**extra, "kind": "macro"})).samples


def corpus_root(name: str, given: str | Path | None, evaluated: Sequence[Sample]) -> Path:
    """The folder of corpus ``name``: ``given``, else found from the frames of its evaluated clips:
    CASME II ``<frames>/subNN/<clip>/imgN.jpg`` (the adapter finds the sheet beside ``<frames>``),
    CAS(ME)^3 ``.../spNO.N/<letter>/color/N.jpg`` (the nearest folder above holding a label sheet)."""
    if given:
        return Path(given).expanduser()
    framed = [s for s in evaluated if s.dataset == name and s.frames]
    hint = (f"MoExt pre-training on {name} clips (the paper's data) needs pretrain.{name}_root, the {name} "
            f"folder; or drop {name} from pretrain.micro_sources" + (" and set pretrain.macro_source none"
                                                                     if name == "casme3" else ""))
    if not framed:
        raise ValueError(hint)
    frame = Path(framed[0].frames[0])
    if name == "casme2":
        return frame.parents[2]
    for folder in list(frame.parents)[3:7]:
        if any(folder.glob("*ME_label*.xlsx")) or any(folder.glob("*ME_label*.csv")):
            return folder
    raise ValueError(f"no CAS(ME)^3 label sheet found above {frame}: {hint}")


def corpus_samples(name: str, root: Path, dataset: DatasetLookup, kind: str = "micro") -> list[Sample]:
    """Every ``kind`` clip of a registered corpus, whatever its emotion (option ``all_emotions``).

    Rows the adapter cannot read (the CAS(ME)^3 v2 sheet has "others" rows whose offset precedes
    the onset) are left out and counted in a logged warning: they hold no usable pair.
    """
    extra: dict[str, Any] = {"all_emotions": True}
    if name == "casme3":
        extra["kind"] = kind
    data = dataset(name).load(root, LoadOptions(extra=extra, skip_invalid=True))
    if data.skipped:
        log.warning("MoExt pre-training: %d unreadable %s %s rows left out (first: %s)", len(data.skipped), name, kind,
                    data.skipped[0])
    return data.samples


def filter_pretraining(samples: Sequence[Sample], data: FoldData) -> list[Sample]:
    """Keep clips of the fold's training subjects, or of a corpus the fold does not evaluate.

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
@dataclass(kw_only=True)
class MoExtPretrainer(Trainer, Settings):
    """Pre-training stage: L = L_re + a1 L_st + a2 L_ss on micro (+ macro) onset/apex pairs.

    ``requests`` are the method's ``onset``/``apex`` feature requests (the extra frames must be
    computed exactly as the fold's). After training, a PNG grid (onset | apex | reconstruction)
    of a few training pairs goes to ``ctx.work_dir``.
    """

    section = "pretrain"

    enabled: bool
    optimizer: str
    lr: PositiveFloat
    weight_decay: NonNegativeFloat
    momentum: NonNegativeFloat
    epochs: PositiveInt
    batch_size: PositiveInt
    weight_averaging: WeightAveraging
    a1: NonNegativeFloat
    a2: NonNegativeFloat
    margin: NonNegativeFloat
    views: PositiveInt
    view_ops: Sequence[Literal["noise", "contrast", "grayscale"]]
    noise_std: NonNegativeFloat
    contrast: Sequence[PositiveFloat]
    micro_sources: Literal["auto"] | Sequence[Literal["synthetic", "casme2", "casme3"]]
    fold_clips: Literal["sources", "all"]
    macro_source: Literal["auto", "synthetic", "casme3", "none"]
    casme2_root: str | None
    casme3_root: str | None
    macro_frame: PositiveInt
    preview: NonNegativeInt
    requests: Mapping[str, FeatureRequest] = runtime(factory=dict)
    augment: Callable[[dict[str, torch.Tensor], torch.Generator], dict[str, torch.Tensor]] | None = runtime()
    copies: int = runtime(1)
    stage_name: str = runtime("pretrain")

    name = "moext-pretrain"

    def __post_init__(self) -> None:
        """What is otherwise first read inside a fold, after the features are made."""
        if len(self.contrast) != 2 or self.contrast[0] > self.contrast[1]:
            raise ValueError(f"pretrain.contrast needs a gain range [low, high], got {list(self.contrast)}")
        ViewExpansion(self.views, tuple(self.view_ops), self.noise_std, tuple(self.contrast))  # views the ops can make
        for key in ("casme2_root", "casme3_root"):
            root = getattr(self, key)
            if root is not None and not Path(root).expanduser().is_dir():
                raise ValueError(f"pretrain.{key}: {root!r} is not a folder; give the corpus folder or null")

    # data ------------------------------------------------------------------------------------
    @staticmethod
    def _on_synthetic(data: FoldData) -> bool:
        return all(s.dataset == "synthetic" for s in data.train.samples)

    @staticmethod
    def _evaluated(data: FoldData) -> list[Sample]:
        return [s for part in (data.train, data.val, data.test) if part is not None for s in part.samples]

    def sources(self, data: FoldData) -> tuple[str, ...]:
        """The corpora of the micro pairs (``auto``: CASME II + CAS(ME)^3 part A, or the synthetic
        corpus's own clips on it)."""
        if self.micro_sources == "auto":
            return ("synthetic",) if self._on_synthetic(data) else PAPER_MICRO_SOURCES
        return tuple(self.micro_sources)

    def fold_index(self, data: FoldData) -> list[int]:
        """The fold's training clips that pre-train: those of the source corpora (``fold_clips:
        sources``, the paper: its pre-training data are CASME II and CAS(ME)^3-A only, so a SAMM or
        SMIC fold adds none of its own clips), or every one (``all``)."""
        sources = set(self.sources(data))
        return [i for i, s in enumerate(data.train.samples) if self.fold_clips == "all" or s.dataset in sources]

    def micro_samples(self, data: FoldData, dataset: DatasetLookup) -> list[Sample]:
        """Micro clips of the source corpora beyond the fold's training clips, every emotion,
        filtered to the fold; ``dataset`` finds the corpora's adapters (the stage context's)."""
        evaluated = self._evaluated(data)
        raw: list[Sample] = []
        for name in self.sources(data):
            if name == "synthetic":
                raw += synthetic_micro_samples(data.train.samples, dataset)
            else:
                root = corpus_root(name, self.casme2_root if name == "casme2" else self.casme3_root, evaluated)
                raw += corpus_samples(name, root, dataset)
        have = {s.key for s in data.train.samples}
        unique = {s.key: s for s in raw if s.key not in have}  # the fold's own clips are already in
        return filter_pretraining(list(unique.values()), data)

    def macro_samples(self, data: FoldData, dataset: DatasetLookup) -> list[Sample]:
        """Macro clips of the configured source, filtered to the fold, with their pseudo-apex."""
        source = self.macro_source
        if source == "auto":
            source = "synthetic" if self._on_synthetic(data) else "casme3"
        if source == "none":
            return []
        if source == "synthetic":
            raw = synthetic_macro_samples(data.train.samples, dataset)
        else:
            root = corpus_root("casme3", self.casme3_root, self._evaluated(data))
            raw = corpus_samples("casme3", root, dataset, kind="macro")
        return [pseudo_apex(s, self.macro_frame) for s in filter_pretraining(raw, data)]

    def pairs(self, data: FoldData, ctx: StageContext) -> tuple[torch.Tensor, torch.Tensor, dict[str, int]]:
        """All (onset, apex) pairs: the fold's training clips of the source corpora (:meth:`fold_index`),
        the extra micro clips, the macro clips; and how many pairs each part holds."""
        own = torch.tensor(self.fold_index(data), dtype=torch.long)
        onset, apex = data.train.inputs["onset"].cpu()[own], data.train.inputs["apex"].cpu()[own]
        micro, macro = self.micro_samples(data, ctx.dataset), self.macro_samples(data, ctx.dataset)
        extra = micro + macro
        if extra:
            if ctx.extract is None:
                raise RuntimeError("pre-training on extra clips needs StageContext.extract to compute their frames")
            onset = torch.cat([onset, ctx.normalize("onset", ctx.extract(self.requests["onset"], extra))])
            apex = torch.cat([apex, ctx.normalize("apex", ctx.extract(self.requests["apex"], extra))])
        if not len(onset):
            raise ValueError(f"MoExt pre-training has no pairs: no fold clip of {list(self.sources(data))} and no "
                             f"extra micro or macro clip (pretrain.micro_sources, fold_clips, macro_source)")
        return onset, apex, {"micro_pairs": len(own), "extra_micro_pairs": len(micro), "macro_pairs": len(macro)}

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
        onset, apex, counts = self.pairs(data, ctx)
        n = len(onset)
        for key, count in counts.items():
            ctx.log_metric(f"{self.stage_name}/{key}", float(count), 0)
        expansion = ViewExpansion(self.views, tuple(self.view_ops), self.noise_std, tuple(self.contrast))
        gen = ctx.generator(offset=31)

        def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            for idx in batch_indices(n, self.batch_size, gen, self.copies):
                o, a = onset[idx].to(device), apex[idx].to(device)
                if self.augment is not None:
                    aug = self.augment({"onset": o, "apex": a}, gen)
                    o, a = aug["onset"], aug["apex"]
                yield o, a

        def step(pairs: tuple[torch.Tensor, torch.Tensor]) -> Step:
            terms = self.losses(model, *pairs, expansion, gen)
            size = len(pairs[0])
            return Step(terms.pop("loss"), size, {k: (v.item() * size, float(size)) for k, v in terms.items()})

        train_epochs(model, [p for p in model.parameters() if p.requires_grad], ctx, stage=self.stage_name,
                     epochs=self.epochs, batches=batches, step=step,
                     optimisation=Optimisation(self.optimizer, self.lr, self.weight_decay, self.momentum,
                                               averaging=self.weight_averaging))
        if self.preview > 0:
            preview = Path(ctx.work_dir) / PREVIEW_FILE
            save_preview(model, onset[: self.preview], apex[: self.preview], device, preview)
            ctx.log_artifact(preview)  # an image artifact of the fold's MLflow run
        return model


def batch_indices(n: int, batch_size: int, generator: torch.Generator, copies: int = 1) -> list[torch.Tensor]:
    """A shuffled epoch over ``copies`` passes of the ``n`` pairs, in batches; a last batch of one
    joins the previous one (BatchNorm on the d x 1 x 1 motion maps needs two samples)."""
    order = torch.randperm(n * copies, generator=generator) % n
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


@dataclass(kw_only=True)
class ObjectiveTrainer(SupervisedTrainer):
    """Objective learning (Section 3.4): the texture branch, R and f are removed, then
    cross-entropy fine-tuning of shape extractor, motion extractor and classifier, each epoch
    over ``copies`` passes of the training clips (:class:`RepeatedSet`)."""

    copies: int = runtime(1)

    def fit(self, model: nn.Module, data: FoldData, ctx: StageContext) -> nn.Module:
        if isinstance(model, MoExtModel):
            model.drop_pretraining_modules()
        n = len(data.train) * self.copies
        if n % self.batch_size == 1 and n > 1:
            # a final batch of one cannot pass BatchNorm on 1x1 maps: one sample larger batches
            return dataclasses.replace(self, batch_size=self.batch_size + 1).fit(model, data, ctx)
        if self.copies > 1:
            train = data.train
            data = dataclasses.replace(data, train=RepeatedSet(train.inputs, train.labels, train.samples, self.copies))
        return super().fit(model, data, ctx)
