"""ResNet-18, the paper's backbone (Sec. VI-A), one model for every pipeline.

Images up to 64 px a side get the CIFAR stem (a 3×3 stride-1 first convolution and no max-pool,
as in the paper's public CIFAR-10 code and airbench-style baselines); larger images get
torchvision's ImageNet stem (7×7 stride 2 and a max-pool). Either way the body is torchvision's
``resnet18``, randomly initialized (no weight download).
"""
from __future__ import annotations

import torch
from torch import nn

SMALL_STEM_MAX_SIDE = 64  # up to this side: 3×3 stem without max-pool


def resnet18(num_classes: int, channels: int = 3, image_size: tuple[int, int] = (32, 32)) -> nn.Module:
    """ResNet-18 for ``channels``-channel images of ``image_size`` with ``num_classes`` outputs."""
    from torchvision.models import resnet18 as tv_resnet18  # heavy: importing torchvision costs ~1 s

    model = tv_resnet18(weights=None, num_classes=num_classes)
    if max(image_size) <= SMALL_STEM_MAX_SIDE:
        model.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif channels != 3:
        model.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")  # torchvision's rule
    return model


def stem_name(image_size: tuple[int, int]) -> str:
    return "3x3-stride1-nomaxpool" if max(image_size) <= SMALL_STEM_MAX_SIDE else "torchvision-7x7"


def prepare(model: nn.Module, device: torch.device) -> nn.Module:
    """Move to the device; channels-last memory on a GPU (faster convolutions under autocast)."""
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model
