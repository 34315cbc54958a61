"""MPFNet as a mer ``Method``: input streams, model, and the progressive training stages
(GFE triplet pre-training -> AFE pre-training on a magnified, class-balanced set ->
prototypical meta-learning with the final centroids from the training subjects).

torch and the model are imported inside the functions that use them: the plugin's hook imports
this module to register the method, and ``mer plugins`` must not load torch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Mapping

from mercore import FeatureRequest, Method, NonNegativeInt, PositiveInt, Settings, Trainer

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from mercore import FoldData, StageContext, SupervisedTrainer, TensorSet

FEATURE_STREAMS = {"flow": "sequence_flow", "diff": "sequence_diff"}
DIFFERENCES = ("absolute", "signed")


def feature_params(config: Mapping[str, Any], magnification: float = 0.0, stream: str = "flow") -> dict[str, Any]:
    """Extractor parameters of ``stream`` (``flow`` or ``diff``), optionally of a magnified clip."""
    f = config["features"]
    params = {"size": int(f["size"]), "length": int(f["length"]), "backend": str(f["backend"]),
              "align": str(f.get("align", "none"))}
    if f.get("source_size"):
        params["source_size"] = int(f["source_size"])
    if magnification:
        params["magnification"] = float(magnification)
    if stream == "diff":
        difference = f.get("frame_difference", "absolute")
        if difference not in DIFFERENCES:
            raise ValueError(f"features.frame_difference must be one of {DIFFERENCES}, got {difference!r}")
        params["absolute"] = difference == "absolute"
    return params


# ----------------------------------------------------------------------------- magnification plan
@dataclass(frozen=True, kw_only=True)
class Magnification(Settings):
    """``afe.magnification``, checked before any work: it is first read inside a fold, after the
    features are computed (see :func:`magnification_plan` for what each key means)."""

    section = "afe.magnification"

    plan: Literal["table", "rule"]
    table: Mapping[str, Mapping[str, PositiveInt]]
    majority_max: PositiveInt
    max_phi: PositiveInt
    max_copies: PositiveInt | None
    include_raw: bool
    per_class: Mapping[str, NonNegativeInt]


def _phis(m: int, cfg: Mapping[str, Any]) -> list[float]:
    """The integer phi values 1..m (capped at ``max_phi``), at most ``max_copies`` of them spread
    evenly over the range (integers, so the feature cache is shared by all folds)."""
    m = max(0, min(m, int(cfg.get("max_phi", 14))))
    phis = list(range(1, m + 1))
    max_copies = cfg.get("max_copies")
    if max_copies is not None and len(phis) > int(max_copies):
        k = int(max_copies)
        phis = sorted({int(round(1 + i * (m - 1) / max(k - 1, 1))) for i in range(k)}) if k > 0 else []
    return [float(p) for p in phis]


def magnification_plan(labels: torch.Tensor, num_classes: int, cfg: Mapping[str, Any],
                       class_names: tuple[str, ...] = ()) -> dict[int, list[float]]:
    """Magnification factors phi per class by the rule, for the class-balanced AFE training set.

    Each clip of class c appears once raw and once per integer phi in 1..m_c, so class c grows to
    (1 + m_c) n_c clips (Table I's counts). The largest class gets ``m = majority_max``; every
    other class the m_c that brings it closest to the same size, ``round(n_max (1 + majority_max)
    / n_c) - 1``, capped at ``max_phi`` (the paper: distortions beyond ~15). ``per_class: {name:
    m}`` sets m_c explicitly; ``max_copies`` thins the values (:func:`_phis`).
    """
    import torch

    counts = torch.bincount(labels.cpu().long(), minlength=num_classes)
    n_max = int(counts.max()) if len(counts) else 0
    mm = int(cfg.get("majority_max", 4))
    per_class = dict(cfg.get("per_class") or {})
    plan: dict[int, list[float]] = {}
    for c in range(num_classes):
        n = int(counts[c])
        if n == 0:
            continue
        name = class_names[c] if c < len(class_names) else str(c)
        plan[c] = _phis(int(per_class[name]) if name in per_class else int(round(n_max * (1 + mm) / n)) - 1, cfg)
    return plan


def table_plan(corpus: str, class_names: tuple[str, ...], cfg: Mapping[str, Any]) -> dict[int, list[float]] | None:
    """Table I's phi ranges 1..m_c for the clips of ``corpus`` (``plan: table``), or None where
    Table I has no row: a corpus it does not list, or a task with a class it does not (its rows
    are of the 3-class task: a 5-class CASME II run plans by the rule)."""
    row = dict((cfg.get("table") or {}).get(corpus) or {})
    if cfg.get("plan", "table") != "table" or not class_names or not set(class_names) <= set(row):
        return None
    return {c: _phis(int(row[name]), cfg) for c, name in enumerate(class_names)}


def magnification_plans(samples: list, labels: torch.Tensor, num_classes: int, cfg: Mapping[str, Any],
                        class_names: tuple[str, ...] = ()) -> dict[str, dict[int, list[float]]]:
    """Phi values per corpus and class for the clips ``samples`` (labels ``labels``).

    Each corpus Table I lists gets its own row (:func:`table_plan`), so the MEGC2019 composite
    is planned per corpus as Table I plans it (its counts are the sums of the three corpora's);
    the clips of every other corpus share one plan by the rule (:func:`magnification_plan`).
    """
    import torch

    corpora = [s.dataset for s in samples]
    plans = {corpus: plan for corpus in dict.fromkeys(corpora)
             if (plan := table_plan(corpus, class_names, cfg)) is not None}
    rest = [i for i, corpus in enumerate(corpora) if corpus not in plans]
    if rest:
        rule = magnification_plan(labels[torch.tensor(rest, dtype=torch.long)], num_classes, cfg, class_names)
        plans.update({corpus: rule for corpus in dict.fromkeys(corpora[i] for i in rest)})
    return plans


def build_magnified_set(data: TensorSet, config: Mapping[str, Any], ctx: StageContext,
                        streams: Mapping[str, str] = FEATURE_STREAMS
                        ) -> tuple[TensorSet, dict[str, dict[int, list[float]]]]:
    """Raw training clips plus their magnified copies (training subjects only), normalised like
    the raw inputs, and the plan (phi values per corpus and class). Without ``ctx.extract`` only
    the raw clips are returned."""
    import torch

    from mercore import TensorSet

    cfg = config["afe"]["magnification"]
    labels = data.labels.cpu()
    plans = magnification_plans(list(data.samples), labels, ctx.num_classes, cfg, ctx.class_names)
    phis_of = [plans[s.dataset].get(int(y), []) for s, y in zip(data.samples, labels)]
    parts_inputs: list[dict[str, torch.Tensor]] = []
    parts_labels: list[torch.Tensor] = []
    samples: list = []
    if cfg.get("include_raw", True):
        parts_inputs.append({k: v.cpu() for k, v in data.inputs.items()})
        parts_labels.append(labels)
        samples += list(data.samples)
    if ctx.extract is not None:
        for phi in sorted({p for ps in phis_of for p in ps}):
            idx = [i for i, ps in enumerate(phis_of) if phi in ps]
            subset = [data.samples[i] for i in idx]
            inputs = {}
            for name in data.inputs:
                request = FeatureRequest(streams[name], feature_params(config, phi, name))
                inputs[name] = ctx.normalize(name, ctx.extract(request, subset).float())
            parts_inputs.append(inputs)
            parts_labels.append(labels[idx])
            samples += subset
    if not parts_inputs:
        raise ValueError("afe.magnification: include_raw is false and no magnified clips could be built")
    inputs = {k: torch.cat([p[k] for p in parts_inputs]) for k in data.inputs}
    return TensorSet(inputs, torch.cat(parts_labels), samples), plans


@dataclass(kw_only=True)
class AFEPretrainer(Trainer):
    """Supervised pre-training of the AFE (+ a linear head) on the magnified, balanced set."""

    config: Mapping[str, Any]
    trainer: SupervisedTrainer  # of the config's afe.train, built (and so checked) by MPFNet.stages
    stage_name: str = "afe"
    name = "afe-pretrain"

    def fit(self, model: nn.Module, data: FoldData, ctx: StageContext) -> nn.Module:
        import torch

        from mercore import FoldData

        from .model import AFEClassifier

        mag, _ = build_magnified_set(data.train, self.config, ctx)
        counts = torch.bincount(mag.labels, minlength=ctx.num_classes).tolist()
        for c, n in enumerate(counts):
            ctx.log_metric(f"{self.stage_name}/samples_{ctx.class_names[c] if c < len(ctx.class_names) else c}",
                           float(n), 0)
        ctx.log_metric(f"{self.stage_name}/magnified_clips", float(len(mag) - len(data.train)), 0)
        wrapper = AFEClassifier(model)
        empty = mag.subset([])
        self.trainer.fit(wrapper, FoldData(train=mag, val=data.val, test=empty, test_groups=data.test_groups), ctx)
        return model


# ----------------------------------------------------------------------------- the method
class MPFNet(Method):
    """MPFNet (Ma et al., 2025): multi-prior fusion network, progressive training."""

    name = "mpfnet"
    description = ("Multi-Prior Fusion Network: CA-I3D GFE (triplet) + AFE (magnified, balanced) fused in "
                   "prototypical meta-learning; parallel (p) or cascade (c)")
    variants = {"c": "cascade", "p": "parallel"}
    default_variant = "c"
    inputs = ("clips",)
    config_package = "mer_mpfnet"
    trainer_sections = {"gfe": "triplet", "afe.train": "supervised", "meta_learning": "episodic"}

    def features(self, config: Mapping[str, Any]) -> dict[str, FeatureRequest]:
        return {name: FeatureRequest(extractor, feature_params(config, stream=name))
                for name, extractor in FEATURE_STREAMS.items()}

    def build_model(self, config: Mapping[str, Any], num_classes: int) -> nn.Module:
        from .model import MPFNetConfig, MPFNetModel

        features = config["features"]
        cfg = MPFNetConfig.from_config(config["model"], size=int(features["size"]), length=int(features["length"]) - 1)
        return MPFNetModel(cfg, num_classes)

    def stages(self, config: Mapping[str, Any]) -> list[Trainer]:
        from mercore import EpisodicTrainer, SupervisedTrainer, TripletTrainer

        stages: list[Trainer] = []
        gfe = dict(config["gfe"])
        if gfe.pop("enabled", True):
            stages.append(TripletTrainer.from_config(gfe, stage_name="gfe", embed=lambda m, x: m.gfe_embed(x),
                                                     parameters=lambda m: m.gfe.parameters()))
        if config["afe"].get("enabled", True):
            Magnification.from_config(config["afe"]["magnification"])
            trainer = SupervisedTrainer.from_config(config["afe"]["train"], where="afe.train", stage_name="afe",
                                                    parameters=lambda m: m.trainable())
            stages.append(AFEPretrainer(config=config, trainer=trainer))
        meta = dict(config["meta_learning"])
        meta.pop("enabled", None)  # the centroids are always needed: epochs 0 only sets them
        stages.append(EpisodicTrainer.from_config(meta, stage_name="meta"))
        return stages
