"""The one PSNR: per image, on 8-bit-rounded images, MAX = 255, MSE over all pixels and channels."""
from __future__ import annotations

import torch

# A perfect reconstruction has infinite PSNR; we report this cap so set means stay finite.
PSNR_CAP_DB = 100.0


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images on [0, 1] → uint8 by rounding (uint8 input is returned unchanged)."""
    if images.dtype == torch.uint8:
        return images
    return (images.float().clamp(0, 1) * 255).round().to(torch.uint8)


def psnr(reference: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each image: tensors (N, C, H, W), uint8 or float on [0, 1]. Returns (N,).

    Both sides are rounded to 8 bits first, as a decoded PNG would be.
    """
    if reference.shape != reconstruction.shape:
        raise ValueError(f"psnr: shapes differ, {tuple(reference.shape)} vs {tuple(reconstruction.shape)}")
    ref = to_uint8(reference).double()
    rec = to_uint8(reconstruction.to(reference.device)).double()
    mse = (ref - rec).square().flatten(1).mean(dim=1)  # (N,)
    out = 10 * torch.log10(255.0**2 / mse)
    return out.clamp(max=PSNR_CAP_DB).float()
