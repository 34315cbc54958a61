"""MPFNet as a mer ``Method``: input streams, model, and the progressive training stages
(GFE triplet pre-training -> AFE pre-training on a magnified, class-balanced set ->
prototypical meta-learning with the final centroids from the training subjects).

torch and the model are imported inside the functions that use them: the plugin's hook imports
this module to register the method, and ``mer plugins`` must not load torch."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from mercore import FeatureRequest, Method, Trainer

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from mercore import FoldData, StageContext, TensorSet

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
def magnification_plan(labels: torch.Tensor, num_classes: int, cfg: Mapping[str, Any],
                       class_names: tuple[str, ...] = ()) -> dict[int, list[float]]:
    """Magnification factors phi per class, for the class-balanced AFE training set.

    Following Table I of the paper, each clip of class c appears once raw and once per integer
    phi in 1..m_c, so class c grows to (1 + m_c) n_c clips. The largest class gets
    ``m = majority_max`` (CASME II negative: 1~4); every other class the m_c that brings it
    closest to the same size, ``round(n_max (1 + majority_max) / n_c) - 1``, capped at
    ``max_phi`` (the paper: distortions beyond ~15). ``per_class: {name: m}`` sets m_c
    explicitly. ``max_copies`` keeps at most that many phi values per class, spread evenly over
    1..m_c (integers, so the feature cache is shared by all folds).
    """
    import torch

    counts = torch.bincount(labels.cpu().long(), minlength=num_classes)
    n_max = int(counts.max()) if len(counts) else 0
    mm = int(cfg.get("majority_max", 4))
    cap = int(cfg.get("max_phi", 14))
    per_class = dict(cfg.get("per_class") or {})
    max_copies = cfg.get("max_copies")
    plan: dict[int, list[float]] = {}
    for c in range(num_classes):
        n = int(counts[c])
        if n == 0:
            continue
        name = class_names[c] if c < len(class_names) else str(c)
        if name in per_class:
            m = int(per_class[name])
        else:
            m = int(round(n_max * (1 + mm) / n)) - 1
        m = max(0, min(m, cap))
        phis = list(range(1, m + 1))
        if max_copies is not None and len(phis) > int(max_copies):
            k = int(max_copies)
            phis = sorted({int(round(1 + i * (m - 1) / max(k - 1, 1))) for i in range(k)}) if k > 0 else []
        plan[c] = [float(p) for p in phis]
    return plan


def build_magnified_set(data: TensorSet, config: Mapping[str, Any], ctx: StageContext,
                        streams: Mapping[str, str] = FEATURE_STREAMS) -> tuple[TensorSet, dict[int, list[float]]]:
    """Raw training clips plus their magnified copies (training subjects only), normalised like
    the raw inputs. Without ``ctx.extract`` only the raw clips are returned."""
    import torch

    from mercore import TensorSet

    cfg = config["afe"]["magnification"]
    plan = magnification_plan(data.labels, ctx.num_classes, cfg, ctx.class_names)
    parts_inputs: list[dict[str, torch.Tensor]] = []
    parts_labels: list[torch.Tensor] = []
    samples: list = []
    if cfg.get("include_raw", True):
        parts_inputs.append({k: v.cpu() for k, v in data.inputs.items()})
        parts_labels.append(data.labels.cpu())
        samples += list(data.samples)
    if ctx.extract is not None:
        labels = data.labels.cpu()
        phis = sorted({p for ps in plan.values() for p in ps})
        for phi in phis:
            idx = [i for i in range(len(data)) if phi in plan.get(int(labels[i]), [])]
            if not idx:
                continue
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
    return TensorSet(inputs, torch.cat(parts_labels), samples), plan


@dataclass
class AFEPretrainer(Trainer):
    """Supervised pre-training of the AFE (+ a linear head) on the magnified, balanced set."""

    config: Mapping[str, Any] = field(default_factory=dict)
    stage_name: str = "afe"
    name = "afe-pretrain"

    def fit(self, model: nn.Module, data: FoldData, ctx: StageContext) -> nn.Module:
        import torch

        from mercore import FoldData, SupervisedTrainer

        from .model import AFEClassifier

        mag, plan = build_magnified_set(data.train, self.config, ctx)
        counts = torch.bincount(mag.labels, minlength=ctx.num_classes).tolist()
        for c, n in enumerate(counts):
            ctx.log_metric(f"{self.stage_name}/samples_{ctx.class_names[c] if c < len(ctx.class_names) else c}",
                           float(n), 0)
        ctx.log_metric(f"{self.stage_name}/magnified_clips", float(len(mag) - len(data.train)), 0)
        wrapper = AFEClassifier(model)
        trainer = SupervisedTrainer.from_config(self.config["afe"]["train"], stage_name=self.stage_name,
                                                parameters=lambda m: m.trainable())
        empty = mag.subset([])
        trainer.fit(wrapper, FoldData(train=mag, val=data.val, test=empty, test_groups=data.test_groups), ctx)
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
        from mercore import EpisodicTrainer, TripletTrainer

        stages: list[Trainer] = []
        gfe = dict(config["gfe"])
        if gfe.pop("enabled", True):
            stages.append(TripletTrainer.from_config(gfe, stage_name="gfe", embed=lambda m, x: m.gfe_embed(x),
                                                     parameters=lambda m: m.gfe.parameters()))
        if config["afe"].get("enabled", True):
            stages.append(AFEPretrainer(config=config))
        meta = dict(config["meta_learning"])
        meta.pop("enabled", None)  # the centroids are always needed: epochs 0 only sets them
        stages.append(EpisodicTrainer.from_config(meta, stage_name="meta"))
        return stages
