"""The MoExt method as the mer core sees it: config (its onset and apex streams declared there), model,
trainer stages."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping

from mercore import Method, hookimpl

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from mercore import Trainer


class MoExt(Method):
    """Motion extraction from onset and apex frames: a shape/texture feature separator and a motion
    extractor pre-trained by apex reconstruction with contrastive losses on micro + macro pairs,
    then fine-tuned with cross-entropy (Li et al. 2024)."""

    name = "moext"
    description = "MoExt: shape/texture separator + motion extractor, apex-reconstruction pre-training (arXiv 2024)"
    variants = {
        "full": "pre-training on micro + macro pairs with L_re + a1 L_st + a2 L_ss, then objective learning",
        "no-pretrain": "Table 7: objective learning only",
        "no-macro": "Table 7: pre-training on micro pairs only",
        "no-motion-extractor": "Table 7: M = |S_a - S_o| instead of the motion extractor",
        "no-lst": "Table 7 'w/o L_st': pre-training without L_st (a1 = 0)",
        "no-lss": "Table 7 'w/o L_oa': pre-training without L_ss (a2 = 0)",
    }
    default_variant = "full"
    inputs = ("clips",)
    config_package = "mer_moext"

    def build_model(self, config: Mapping[str, Any], num_classes: int) -> nn.Module:
        from .model import build_model  # imports torch: only when a model is built, not when the plugin loads

        return build_model(config["model"], num_classes, int(config["features"]["size"]))

    def augment(self, config: Mapping[str, Any]) -> Callable[[dict[str, torch.Tensor], torch.Generator], dict[str, torch.Tensor]] | None:
        from .pretrain import MirrorRotate

        spec = dict(config.get("augment") or {})
        if float(spec.get("flip", 0)) == 0 and float(spec.get("rotate", 0)) == 0:
            return None
        return MirrorRotate(spec.get("flip", 0.5), spec.get("rotate", 10.0))

    def stages(self, config: Mapping[str, Any]) -> list[Trainer]:
        from .pretrain import MoExtPretrainer, ObjectiveTrainer

        augment, copies = self.augment(config), int(config["augment"]["copies"])
        if copies < 1:
            raise ValueError(f"augment.copies must be an integer >= 1 (passes over the training clips per epoch), "
                             f"got {copies}")
        return [MoExtPretrainer.from_config(config["pretrain"], requests=self.features(config), augment=augment,
                                            copies=copies),
                ObjectiveTrainer.from_config(config["train"], augment=augment, stage_name="objective", copies=copies)]


@hookimpl
def mer_register_methods(register: Callable[[Any], None]) -> None:
    register(MoExt)
