"""The one decode-and-PSNR: how well a set of SIRENs reproduces its images.

Every image is decoded at the images' size and compared with :func:`rapidinr.core.metrics.psnr`
(8-bit rounded, MAX 255), in batches so that a large set never decodes all at once.
"""
from __future__ import annotations

import torch

from rapidinr.codec.inrset import INRSet
from rapidinr.core.config import Arch
from rapidinr.core.metrics import psnr


def measure_set(inrs: INRSet, images: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    """(N,) PSNR of every image's decode against ``images`` (uint8 N×C×H×W), on the CPU."""
    out = []
    for start in range(0, len(inrs), batch):
        rows = torch.arange(start, min(start + batch, len(inrs)))
        out.append(psnr(images[start : start + batch], inrs.decode(rows).cpu()))
    return torch.cat(out) if out else torch.empty(0)


def measure_weights(params: torch.Tensor, arch: Arch, images: torch.Tensor, device=None,
                    batch: int = 1024) -> torch.Tensor:
    """(N,) PSNR of raw float weights (N, P) not yet in an INRSet, decoded on ``device``
    (default: the weights' own device)."""
    inrs = INRSet(params, arch, images.shape[2], images.shape[3])
    return measure_set(inrs.to(device) if device is not None else inrs, images, batch)
