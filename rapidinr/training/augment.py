"""The one augmentation contract every loader follows.

Per image, independently: a crop box and a horizontal flip (p = 0.5), then normalization.

- Small images (a side of at most 64 px): random crop with zero padding, the CIFAR recipe
  (torchvision's ``RandomCrop(size, padding)``): the box is the image shifted by a whole number
  of pixels in [-pad, pad] each way; what falls outside the image is black.
- Larger images: random-resized crop (torchvision's ``RandomResizedCrop``: area fraction in
  ``scale``, aspect ratio log-uniform in ``ratio``, ten tries, then a centre crop).

A box is held in *fractions of the image* (top, left, height, width), so it means the same
thing at any resolution. It is then rendered two ways that agree by construction:

- :func:`box_coords`: the output pixel centres mapped into the source image's [-1, 1]
  coordinates, (B, H*W, 2), flip folded in. The INR loader evaluates each image's SIREN there:
  crop, resize and flip cost nothing beyond the decode itself.
- :func:`apply_pixels`: the same boxes as batched pixel ops on images already in memory
  (tensor, JPEG, nvJPEG loaders): an index gather for pad-crops (exact whole-pixel shifts),
  ``grid_sample`` at the very same coordinates for resized crops (bilinear point sampling, as the
  SIREN is point-sampled: neither side low-pass filters).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rapidinr.core.errors import UserError

SMALL_IMAGE_MAX_SIDE = 64  # up to this side: crop with padding; above: random-resized crop


@dataclass(frozen=True)
class AugmentConfig:
    """What augmentation a loader applies; the same object is handed to every pipeline."""

    size: tuple[int, int]  # (H, W) the training size every loader yields
    mode: str = "auto"  # "pad-crop", "resized-crop", "none", or "auto" (by size)
    pad_fraction: float = 0.125  # pad-crop: padding as a fraction of the side (4 px at 32 px)
    scale: tuple[float, float] = (0.35, 1.0)  # resized-crop: area fraction (torchvision: 0.08..1)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # resized-crop: aspect ratio range
    flip: float = 0.5  # probability of a horizontal flip
    mean: float = 0.5  # normalization: (x - mean) / std, x on [0, 1], the same for every channel
    std: float = 0.25

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "pad-crop", "resized-crop", "none"):
            raise UserError(f"--augment: unknown augmentation mode {self.mode!r} "
                            "(use auto, pad-crop, resized-crop or none)")

    @property
    def resolved_mode(self) -> str:
        if self.mode != "auto":
            return self.mode
        return "pad-crop" if max(self.size) <= SMALL_IMAGE_MAX_SIDE else "resized-crop"

    @property
    def pad(self) -> tuple[int, int]:
        """Padding in whole training pixels (rows, columns)."""
        return tuple(int(round(s * self.pad_fraction)) for s in self.size)

    def to_json(self) -> dict:
        return {"size": list(self.size), "mode": self.resolved_mode, "pad": list(self.pad),
                "scale": list(self.scale), "ratio": list(self.ratio), "flip": self.flip,
                "mean": self.mean, "std": self.std}

    def evaluation(self) -> "AugmentConfig":
        """The same normalization and size with no random crop or flip (for test images)."""
        return AugmentConfig(self.size, "none", self.pad_fraction, self.scale, self.ratio, 0.0,
                             self.mean, self.std)


@dataclass
class Boxes:
    """Per-image crop boxes in fractions of the source image, and flips. All shapes (B,)."""

    top: torch.Tensor
    left: torch.Tensor
    height: torch.Tensor
    width: torch.Tensor
    flip: torch.Tensor  # bool

    def __len__(self) -> int:
        return self.top.shape[0]

    def to(self, device) -> "Boxes":
        return Boxes(*(to_device(t, device) for t in (self.top, self.left, self.height, self.width, self.flip)))


def to_device(tensor: torch.Tensor, device) -> torch.Tensor:
    """A small CPU tensor onto ``device`` without a host sync: CPU → CUDA goes through pinned
    memory as a non-blocking copy (a blocking copy would wait for every kernel queued before it)."""
    device = torch.device(device)
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def sample_boxes(n: int, cfg: AugmentConfig, generator: torch.Generator | None = None) -> Boxes:
    """Independent random boxes and flips for ``n`` images (float64 on the CPU, cheap)."""
    mode = cfg.resolved_mode
    flip = torch.rand(n, generator=generator) < cfg.flip
    ones, zeros = torch.ones(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
    if mode == "none":
        return Boxes(zeros, zeros.clone(), ones, ones.clone(), flip)
    if mode == "pad-crop":
        (pad_h, pad_w), (h, w) = cfg.pad, cfg.size
        dy = torch.randint(-pad_h, pad_h + 1, (n,), generator=generator).double()
        dx = torch.randint(-pad_w, pad_w + 1, (n,), generator=generator).double()
        return Boxes(dy / h, dx / w, ones, ones.clone(), flip)
    return _resized_crop_boxes(n, cfg, generator, flip)


def _resized_crop_boxes(n: int, cfg: AugmentConfig, generator, flip) -> Boxes:
    """torchvision's RandomResizedCrop sampling, vectorized; boxes in fractions of the image.

    The source's aspect ratio is taken as the training size's (loaders hold images at that shape).
    """
    tries = 10
    h, w = cfg.size
    area = torch.empty(n, tries, dtype=torch.float64).uniform_(*cfg.scale, generator=generator)
    log_ratio = torch.empty(n, tries, dtype=torch.float64).uniform_(
        math.log(cfg.ratio[0]), math.log(cfg.ratio[1]), generator=generator)
    ratio = log_ratio.exp()
    box_w = torch.sqrt(area * h * w * ratio).round() / w  # (n, tries) fraction of the width
    box_h = torch.sqrt(area * h * w / ratio).round() / h
    ok = (box_w > 0) & (box_w <= 1) & (box_h > 0) & (box_h <= 1)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1))
    pick = first.clamp(min=0)[:, None]
    bw = box_w.gather(1, pick)[:, 0]
    bh = box_h.gather(1, pick)[:, 0]
    fallback = first < 0  # the centre crop of the whole image at the nearest allowed ratio
    bw = torch.where(fallback, torch.ones_like(bw), bw)
    bh = torch.where(fallback, torch.ones_like(bh), bh)
    u = torch.rand(n, 2, dtype=torch.float64, generator=generator)
    top = torch.floor(u[:, 0] * ((1 - bh) * h + 1)).clamp(max=(1 - bh) * h) / h  # whole pixels
    left = torch.floor(u[:, 1] * ((1 - bw) * w + 1)).clamp(max=(1 - bw) * w) / w
    return Boxes(top, left, bh, bw, flip)


def box_coords(boxes: Boxes, size: tuple[int, int], device=None) -> torch.Tensor:
    """Output pixel centres of every box in the source's [-1, 1] (x, y) coordinates: (B, H*W, 2).

    Output pixel (i, j) of an H×W crop sits at the source position
    ``top + (i + 0.5) / H * height`` (as a fraction of the source), likewise for x; a flip mirrors
    j inside the box. At ``height = 1`` and a whole-pixel ``top`` these are exactly the source's
    own pixel centres, shifted.
    """
    h, w = size
    b = len(boxes)
    boxes = boxes.to(device)
    u = (torch.arange(h, device=device, dtype=torch.float64) + 0.5) / h  # (H,)
    v = (torch.arange(w, device=device, dtype=torch.float64) + 0.5) / w  # (W,)
    v = torch.where(boxes.flip[:, None], 1 - v[None], v[None])  # (B, W)
    y = (boxes.top[:, None] + u[None] * boxes.height[:, None]) * 2 - 1  # (B, H), in float64: exact
    x = (boxes.left[:, None] + v * boxes.width[:, None]) * 2 - 1  # (B, W)
    grid = torch.empty(b, h, w, 2, device=device)  # (B, H, W, 2) float32, filled by broadcasting
    grid[..., 0] = x.float()[:, None, :]
    grid[..., 1] = y.float()[:, :, None]
    return grid.view(b, h * w, 2)  # (B, H*W, 2)


def inside(coords: torch.Tensor) -> torch.Tensor:
    """1 where a coordinate lies inside the source image, 0 in the padding: (B, P, 1) float."""
    return (coords.abs() <= 1).all(dim=-1, keepdim=True).to(coords.dtype)


def apply_pixels(images: torch.Tensor, boxes: Boxes, size: tuple[int, int]) -> torch.Tensor:
    """The boxes as batched pixel ops: images (B, C, h, w) uint8 or float → float (B, C, H, W) on [0, 1].

    ``boxes`` as :func:`sample_boxes` makes them, on the CPU (boxes on a device are copied back).

    Pad-crop boxes (full-size boxes at whole-pixel offsets, output size = source size) become an
    index gather with zero fill (exact); every other box is bilinear ``grid_sample`` at the
    coordinates :func:`box_coords` gives the INR loader.
    """
    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    b, c, src_h, src_w = x.shape
    h, w = size
    # Boxes are decided on the CPU (sample_boxes makes them there): which path, and how much
    # padding, never read a value back from the device, so a GPU batch costs no host sync.
    boxes = boxes.to("cpu")
    whole = (bool((boxes.height == 1).all()) and bool((boxes.width == 1).all()) and (h, w) == (src_h, src_w))
    if whole:
        dy_cpu, dx_cpu = (boxes.top * h).round().long(), (boxes.left * w).round().long()  # (B,)
        pad = int(max(dy_cpu.abs().max(), dx_cpu.abs().max())) if b else 0
        dy, dx = to_device(dy_cpu, x.device), to_device(dx_cpu, x.device)
        if pad:
            x = F.pad(x, (pad, pad, pad, pad))  # zero fill, as torchvision's RandomCrop(padding=...)
        rows = dy[:, None] + pad + torch.arange(h, device=x.device)  # (B, H)
        cols = dx[:, None] + pad + torch.arange(w, device=x.device)  # (B, W)
        cols = torch.where(to_device(boxes.flip, x.device)[:, None], cols.flip(1), cols)
        x = x.gather(2, rows[:, None, :, None].expand(b, c, h, x.shape[3]))  # (B, C, H, w+2p)
        return x.gather(3, cols[:, None, None, :].expand(b, c, h, w))  # (B, C, H, W)
    grid = box_coords(boxes, size, device=x.device).view(b, h, w, 2)  # (B, H, W, 2) as (x, y)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def normalize(images: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """(x - mean) / std, in place on a float batch on [0, 1]."""
    return images.sub_(cfg.mean).div_(cfg.std)
