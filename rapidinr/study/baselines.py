"""The baselines of paper Fig. 3 and 6: JPEG at a quality, JPEG matched to a byte budget, and JPEG
downsampling (downscale, JPEG, upscale back), each with its reconstructions and real bytes.

JPEG is Pillow's (libjpeg-turbo) baseline encoder with ``optimize=True`` (Huffman tables fitted
to the image, the smallest file libjpeg makes at a quality) and its default 4:2:0 chroma
subsampling. ``bytes`` is the length of the whole .jpg file, headers and tables included:
what storing the image costs. At 32×32 those headers are most of the file, so ``scan_bytes``
also gives the entropy-coded data alone, an *estimate* of a header-free JPEG (shared tables,
as a container holding many images could use); it is never decodable on its own.

Every PSNR here is :func:`rapidinr.core.metrics.psnr`, the same function the INRs are scored with.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from rapidinr.core.errors import UserError
from rapidinr.core.metrics import psnr as psnr_of

QUALITIES = tuple(range(1, 101))  # every libjpeg quality, searched when matching a budget
RESAMPLE = Image.Resampling.BICUBIC  # down (antialiased by Pillow) and back up


@dataclass
class CodecResult:
    """One baseline over N images."""

    images: torch.Tensor  # (N, C, H, W) uint8 reconstructions
    bytes: torch.Tensor  # (N,) int64: real .jpg file sizes
    scan_bytes: torch.Tensor  # (N,) int64: entropy-coded data only (estimate, see module doc)
    quality: torch.Tensor  # (N,) int64 JPEG quality used
    factor: torch.Tensor  # (N,) int64 downscale factor (1: plain JPEG)
    psnr: torch.Tensor  # (N,) dB against the originals
    over_budget: torch.Tensor  # (N,) bool: even quality 1 did not fit the budget

    def summary(self) -> dict:
        return {"bytes_mean": float(self.bytes.double().mean()),
                "scan_bytes_mean": float(self.scan_bytes.double().mean()),
                "psnr_mean": float(self.psnr.mean()), "quality_mean": float(self.quality.double().mean()),
                "over_budget": int(self.over_budget.sum())}


def _pil(image: torch.Tensor) -> Image.Image:
    array = image.permute(1, 2, 0).cpu().numpy()  # (H, W, C)
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array, "L" if array.shape[2] == 1 else "RGB")


def _tensor(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image)
    return torch.from_numpy(array.copy() if array.ndim == 3 else array[:, :, None].copy()).permute(2, 0, 1)


def scan_bytes(data: bytes) -> int:
    """Bytes of entropy-coded data in a baseline JPEG: from after the SOS header to before EOI."""
    pos = data.find(b"\xff\xda")
    if pos < 0:
        return len(data)
    header = int.from_bytes(data[pos + 2 : pos + 4], "big")
    return max(0, len(data) - (pos + 2 + header) - 2)


def encode_jpeg(image: torch.Tensor, quality: int, factor: int = 1, optimize: bool = True) -> bytes:
    """A (C, H, W) uint8 image → .jpg bytes, first downscaled ``factor``× (at least 1 pixel a side).

    optimize: fitted Huffman tables (False: libjpeg's standard tables, Pillow's default)."""
    if not (1 <= int(quality) <= 100):
        raise UserError(f"JPEG quality must be 1..100, got {quality}")
    pil = _pil(image)
    if factor != 1:
        pil = pil.resize((max(1, -(-pil.width // factor)), max(1, -(-pil.height // factor))), RESAMPLE)
    out = io.BytesIO()
    pil.save(out, "JPEG", quality=int(quality), optimize=bool(optimize))
    return out.getvalue()


def decode_jpeg(data: bytes, height: int, width: int) -> torch.Tensor:
    """.jpg bytes → (C, H, W) uint8, upscaled back to ``height``×``width`` where it was downscaled."""
    pil = Image.open(io.BytesIO(data))
    pil.load()
    if (pil.height, pil.width) != (height, width):
        pil = pil.resize((width, height), RESAMPLE)
    return _tensor(pil)


def _run(images: torch.Tensor, qualities, factors, budgets=None, optimize: bool = True) -> CodecResult:
    n, _, h, w = images.shape
    recs, sizes, scans = [], [], []
    for i in range(n):
        data = encode_jpeg(images[i], int(qualities[i]), int(factors[i]), optimize)
        recs.append(decode_jpeg(data, h, w))
        sizes.append(len(data))
        scans.append(scan_bytes(data))
    rec = torch.stack(recs) if recs else torch.empty_like(images)
    size = torch.tensor(sizes, dtype=torch.long)
    over = size > torch.as_tensor(budgets) if budgets is not None else torch.zeros(n, dtype=torch.bool)
    return CodecResult(rec, size, torch.tensor(scans, dtype=torch.long), torch.as_tensor(qualities).long(),
                       torch.as_tensor(factors).long(), psnr_of(images, rec), over)


def jpeg(images: torch.Tensor, quality: int, factor: int = 1, optimize: bool = True) -> CodecResult:
    """Every image of (N, C, H, W) uint8 through JPEG at one ``quality`` (downscaled ``factor``× first)."""
    n = images.shape[0]
    return _run(images, [quality] * n, [factor] * n, optimize=optimize)


def jpeg_downsampled(images: torch.Tensor, quality: int, factor: int = 2) -> CodecResult:
    """Downscale ``factor``×, JPEG at ``quality``, upscale back (bicubic both ways)."""
    if factor < 2:
        raise UserError(f"a downsampling factor must be >= 2, got {factor}")
    return jpeg(images, quality, factor)


def ladder(images: torch.Tensor, factor: int = 1) -> torch.Tensor:
    """File size of every image at every quality in QUALITIES (N, 100) (not always monotone in
    quality). Pass it to the ``*_at_budget`` functions to match many budgets without re-encoding."""
    return torch.tensor([[len(encode_jpeg(image, q, factor)) for q in QUALITIES] for image in images],
                        dtype=torch.long).reshape(images.shape[0], len(QUALITIES))


def _fit_quality(sizes: torch.Tensor, budget: float) -> tuple[int, bool]:
    """Highest quality whose file fits ``budget``; quality 1 (flagged) when none does."""
    fitting = [q for q, size in zip(QUALITIES, sizes.tolist()) if size <= budget]
    return (max(fitting), False) if fitting else (QUALITIES[0], True)


def _budgets(budget, n: int) -> torch.Tensor:
    out = torch.as_tensor(budget, dtype=torch.float64).expand(n).clone()
    if not torch.isfinite(out).all() or (out <= 0).any():
        raise UserError("a byte budget must be a positive number")
    return out


def jpeg_at_budget(images: torch.Tensor, budget, sizes: torch.Tensor | None = None) -> CodecResult:
    """JPEG at the highest quality whose file fits each image's byte budget (a float or (N,)).

    sizes: ``ladder(images)`` when already computed."""
    n = images.shape[0]
    budgets = _budgets(budget, n)
    sizes = ladder(images, 1) if sizes is None else sizes
    picks = [_fit_quality(sizes[i], float(budgets[i]))[0] for i in range(n)]
    return _run(images, picks, [1] * n, budgets)


def jpeg_downsampled_at_budget(images: torch.Tensor, budget, factors=(2, 4),
                               ladders: dict[int, torch.Tensor] | None = None) -> CodecResult:
    """Downsampled JPEG fitting each image's budget: for each factor the highest quality that fits,
    then, per image, the factor whose reconstruction has the best PSNR (an oracle choice, which
    can only flatter the baseline). ladders: {factor: ``ladder(images, factor)``} when computed."""
    n = images.shape[0]
    budgets = _budgets(budget, n)
    best = None
    for factor in factors:
        if factor < 2:
            raise UserError(f"a downsampling factor must be >= 2, got {factor}")
        sizes = ladders[factor] if ladders and factor in ladders else ladder(images, factor)
        picks = [_fit_quality(sizes[i], float(budgets[i]))[0] for i in range(n)]
        result = _run(images, picks, [factor] * n, budgets)
        if best is None:
            best = result
            continue
        # prefer a fitting result, then the higher PSNR
        take = (best.over_budget & ~result.over_budget) | ((best.over_budget == result.over_budget)
                                                           & (result.psnr > best.psnr))
        for field in ("images", "bytes", "scan_bytes", "quality", "factor", "psnr", "over_budget"):
            getattr(best, field)[take] = getattr(result, field)[take]
    return best
