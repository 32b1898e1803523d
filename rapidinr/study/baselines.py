"""The classical baselines: every codec of :mod:`rapidinr.codec.classical` under two protocols,
with its reconstructions, real file bytes and the one PSNR.

- quality sweep (:func:`at_quality`): every image at one quality; a curve is many qualities;
- byte cap (:func:`at_cap`): per image, the highest quality whose file fits the cap, found by
  bisection over the codec's quality range (COIN++'s protocol on CIFAR-10). An image whose file
  at the lowest quality is still over the cap is flagged ``over_budget``: the cap is *unmet*
  for it, and summaries report it as such, never as a PSNR.
- :func:`envelope`: the best classical codec at each cap (max mean PSNR over codecs that meet it).

The paper's comparison (Fig. 3 and 6) used JPEG with optimized Huffman tables and 4:2:0 chroma
(``PAPER_JPEG``) and downsampled JPEG; :func:`jpeg`, :func:`jpeg_at_budget` and
:func:`jpeg_downsampled_at_budget` keep drawing it. ``bytes`` is always the whole file, headers
included. At 32×32 those headers are most of a JPEG, so ``scan_bytes`` also gives a JPEG's
entropy-coded data alone, an *estimate* of a header-free JPEG (shared tables, as a container
holding many images could use); it is never decodable on its own.

Every PSNR here is :func:`rapidinr.core.metrics.psnr`, the same function the INRs are scored with.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from rapidinr.codec.classical import CODECS, CodecSpec, decode, encode, parse_codec
from rapidinr.core.errors import UserError
from rapidinr.core.metrics import psnr as psnr_of

PAPER_JPEG = "jpeg-opt420"  # the paper comparison's JPEG: optimized Huffman tables, 4:2:0


@dataclass
class CodecResult:
    """One codec over N images."""

    images: torch.Tensor  # (N, C, H, W) uint8 reconstructions
    bytes: torch.Tensor  # (N,) int64: real file sizes
    scan_bytes: torch.Tensor  # (N,) int64: JPEG entropy-coded data only (estimate; other codecs: = bytes)
    quality: torch.Tensor  # (N,) int64 quality used
    factor: torch.Tensor  # (N,) int64 downscale factor (1: none)
    psnr: torch.Tensor  # (N,) dB against the originals
    over_budget: torch.Tensor  # (N,) bool: even the lowest quality did not fit the cap
    codec: str = ""

    @property
    def unmet(self) -> int:
        """Images whose cap no quality of the codec could meet."""
        return int(self.over_budget.sum())

    def summary(self) -> dict:
        """Means over the images; PSNR and bytes are None when any image missed its cap (an unmet
        cap has no PSNR: a mean over the images that fit would flatter the codec)."""
        met = self.unmet == 0
        return {"codec": self.codec, "images": int(self.bytes.numel()),
                "bytes_mean": float(self.bytes.double().mean()) if met else None,
                "psnr_mean": float(self.psnr.mean()) if met else None,
                "quality_mean": float(self.quality.double().mean()),
                "scan_bytes_mean": float(self.scan_bytes.double().mean()) if met else None,
                "unmet": self.unmet}


def scan_bytes(data: bytes) -> int:
    """Bytes of entropy-coded data in a baseline JPEG: from after the SOS header to before EOI."""
    pos = data.find(b"\xff\xda")
    if pos < 0 or not data.startswith(b"\xff\xd8"):
        return len(data)
    header = int.from_bytes(data[pos + 2 : pos + 4], "big")
    return max(0, len(data) - (pos + 2 + header) - 2)


def _spec(codec) -> CodecSpec:
    return codec if isinstance(codec, CodecSpec) else parse_codec(codec)


def _run(images: torch.Tensor, spec: CodecSpec, qualities, caps=None) -> CodecResult:
    n, c, h, w = images.shape
    recs, sizes, scans = [], [], []
    for i in range(n):
        data = encode(spec, images[i], int(qualities[i]))
        recs.append(decode(spec, data, c, h, w))
        sizes.append(len(data))
        scans.append(scan_bytes(data))
    rec = torch.stack(recs) if recs else torch.empty_like(images)
    size = torch.tensor(sizes, dtype=torch.long)
    over = size > torch.as_tensor(caps) if caps is not None else torch.zeros(n, dtype=torch.bool)
    return CodecResult(rec, size, torch.tensor(scans, dtype=torch.long), torch.as_tensor(qualities).long(),
                       torch.full((n,), spec.factor, dtype=torch.long), psnr_of(images, rec), over, spec.name)


def at_quality(images: torch.Tensor, codec, quality: int) -> CodecResult:
    """Every image of (N, C, H, W) uint8 through ``codec`` (a name or spec) at one ``quality``."""
    spec = _spec(codec)
    return _run(images, spec, [quality] * images.shape[0])


def best_quality(size_at: Callable[[int], int], low: int, high: int, cap: float) -> int | None:
    """Highest quality in ``low..high`` whose file fits ``cap`` bytes, by bisection (file size
    grows with quality); None when even ``low`` does not fit. ~log2(range) encodes, not range.

    Where a codec's size is not monotone in quality (AVIF at 32×32, now and then) bisection can stop
    a few qualities short of the best that fits: measured on 6 Kodak crops × 5 caps, it matched trying
    every quality in 30/30 cases for JPEG, optimized JPEG, WebP, JPEG 2000 and JPEG XL, 27/30 for AVIF."""
    if size_at(low) > cap:
        return None
    while low < high:  # invariant: size_at(low) fits
        mid = (low + high + 1) // 2
        if size_at(mid) <= cap:
            low = mid
        else:
            high = mid - 1
    return low


def _caps(cap, n: int) -> torch.Tensor:
    out = torch.as_tensor(cap, dtype=torch.float64).expand(n).clone()
    if not torch.isfinite(out).all() or (out <= 0).any():
        raise UserError("a byte cap must be a positive number")
    return out


def at_cap(images: torch.Tensor, codec, cap) -> CodecResult:
    """Per image, the highest quality whose file fits ``cap`` (a number or (N,) per image), by
    bisection; images no quality fits are encoded at the lowest and flagged ``over_budget``."""
    spec = _spec(codec)
    n = images.shape[0]
    caps = _caps(cap, n)
    picks = []
    for i in range(n):
        memo: dict[int, int] = {}

        def size_at(q: int, image=images[i]) -> int:
            if q not in memo:
                memo[q] = len(encode(spec, image, q))
            return memo[q]

        q = best_quality(size_at, spec.codec.low, spec.codec.high, float(caps[i]))
        picks.append(spec.codec.low if q is None else q)
    return _run(images, spec, picks, caps)


def smallest_file(images: torch.Tensor, codec) -> int:
    """The smallest file ``codec`` makes of any of ``images`` (its lowest quality): no cap below
    it can be met by this codec on these images."""
    spec = _spec(codec)
    return min(len(encode(spec, image, spec.codec.low)) for image in images)


def envelope(results: dict[str, CodecResult]) -> dict:
    """Best classical codec at one cap: of the codecs that meet it on every image, the one with the
    highest mean PSNR. Returns its summary plus ``best`` (its name), or an unmet entry if none met it."""
    met = {name: r for name, r in results.items() if r.unmet == 0}
    if not met:
        return {"best": None, "bytes_mean": None, "psnr_mean": None, "unmet": len(results)}
    name = max(met, key=lambda k: float(met[k].psnr.mean()))
    return {"best": name, **met[name].summary()}


# -- the paper's comparison: optimized 4:2:0 JPEG and downsampled JPEG -------------------------------
def _paper_spec(factor: int = 1) -> CodecSpec:
    if factor < 1:
        raise UserError(f"a downsampling factor must be >= 1, got {factor}")
    return CodecSpec(PAPER_JPEG + (f"-x{factor}" if factor > 1 else ""), CODECS[PAPER_JPEG], factor)


def jpeg(images: torch.Tensor, quality: int, factor: int = 1, optimize: bool = True) -> CodecResult:
    """Every image of (N, C, H, W) uint8 through the paper's JPEG at one ``quality`` (downscaled
    ``factor``× first); ``optimize=False``: Pillow's default JPEG (standard tables, 4:2:0)."""
    if not (1 <= int(quality) <= 100):
        raise UserError(f"JPEG quality must be 1..100, got {quality}")
    if optimize:
        return at_quality(images, _paper_spec(factor), quality)
    return at_quality(images, CodecSpec("jpeg" + (f"-x{factor}" if factor > 1 else ""), CODECS["jpeg"], factor),
                      quality)


def jpeg_downsampled(images: torch.Tensor, quality: int, factor: int = 2) -> CodecResult:
    """Downscale ``factor``×, the paper's JPEG at ``quality``, upscale back (bicubic both ways)."""
    if factor < 2:
        raise UserError(f"a downsampling factor must be >= 2, got {factor}")
    return jpeg(images, quality, factor)


def jpeg_at_budget(images: torch.Tensor, budget) -> CodecResult:
    """The paper's JPEG at the highest quality whose file fits each image's byte budget."""
    return at_cap(images, _paper_spec(1), budget)


def jpeg_downsampled_at_budget(images: torch.Tensor, budget, factors=(2, 4)) -> CodecResult:
    """Downsampled JPEG fitting each image's budget: for each factor the highest quality that fits,
    then, per image, the factor whose reconstruction has the best PSNR (an oracle choice, which
    can only flatter the baseline)."""
    best = None
    for factor in factors:
        if factor < 2:
            raise UserError(f"a downsampling factor must be >= 2, got {factor}")
        result = at_cap(images, _paper_spec(factor), budget)
        if best is None:
            best = result
            continue
        # prefer a fitting result, then the higher PSNR
        take = (best.over_budget & ~result.over_budget) | ((best.over_budget == result.over_budget)
                                                           & (result.psnr > best.psnr))
        for field in ("images", "bytes", "scan_bytes", "quality", "factor", "psnr", "over_budget"):
            getattr(best, field)[take] = getattr(result, field)[take]
    return best


def quality_grid(codec, points: int = 13) -> list[int]:
    """``points`` qualities spread over the codec's range (for a sweep curve)."""
    spec = _spec(codec)
    low, high = spec.codec.low, spec.codec.high
    return sorted({int(round(low + (high - low) * k / (points - 1))) for k in range(points)}) if points > 1 \
        else [high]

