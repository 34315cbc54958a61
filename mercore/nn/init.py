"""Weight initialisation shared by the ResNet-style methods."""
from __future__ import annotations

from torch import nn


def init_resnet_style(model: nn.Module) -> None:
    """He (fan-out, ReLU) normal for every Conv2d with zero bias, and BatchNorm2d at weight 1 and
    bias 0: torchvision's ResNet initialisation, which DFR-Net and RRMFNet train from."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
