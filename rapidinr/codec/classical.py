"""Classical image codecs, each as real file bytes at an integer quality: the field's baselines.

One registry, :data:`CODECS`, names every codec the study can run; each one encodes a (C, H, W)
uint8 image to the bytes of a complete file (headers included: what storing it costs) and
decodes those bytes back. Every codec's size grows (almost always) with its ``quality``, which
is what the byte-cap bisection in ``rapidinr.study.baselines`` relies on.

- ``jpeg``: Pillow (libjpeg-turbo) with its defaults: standard Huffman tables, 4:2:0 chroma;
- ``jpeg-opt``: optimized Huffman tables and 4:4:4 (no chroma subsampling);
- ``jpeg-opt420``: optimized Huffman tables, 4:2:0: the JPEG of the toolkit's paper comparison;
- ``webp``: libwebp lossy, ``method=6`` (its slowest, smallest);
- ``avif``: libavif (Pillow), 4:4:4, speed 6;
- ``jp2``: JPEG 2000 (OpenJPEG), 9/7 wavelet, quality = the target PSNR layer in dB;
- ``jxl``: JPEG XL (libjxl through ``imagecodecs``, the ``[jxl]`` extra), effort 7.

A name ending ``-xN`` (``jpeg-opt-x2``) downscales N× first (bicubic, antialiased by Pillow) and
upscales the decoded image back: the paper's "downsampled JPEG" for any codec.

:func:`encode_jpeg` is the project's one JPEG encoder with explicit table settings; the training
loaders' JPEG files are written through it too.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from PIL import Image, features

from rapidinr.core.errors import UserError

RESAMPLE = Image.Resampling.BICUBIC  # down (antialiased by Pillow) and back up
SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}  # Pillow's JPEG ``subsampling`` codes


def to_pil(image: torch.Tensor) -> Image.Image:
    """(C, H, W) uint8 tensor, C = 1 or 3 → a Pillow image (L or RGB)."""
    array = image.permute(1, 2, 0).cpu().numpy()  # (H, W, C)
    return Image.fromarray(np.ascontiguousarray(array[:, :, 0] if array.shape[2] == 1 else array))


def from_pil(image: Image.Image, channels: int) -> torch.Tensor:
    """A Pillow image → (C, H, W) uint8 with ``channels`` channels."""
    image = image.convert("L" if channels == 1 else "RGB")
    array = np.asarray(image)
    array = array[:, :, None] if array.ndim == 2 else array
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def encode_jpeg(image: torch.Tensor, quality: int, subsampling: str = "4:2:0", optimize: bool = False) -> bytes:
    """A (C, H, W) uint8 image → JPEG file bytes at ``quality`` 1..100.

    subsampling: chroma subsampling ("4:2:0" is libjpeg's and Pillow's default); optimize: Huffman
    tables fitted to the image (False: the standard tables, Pillow's default)."""
    if not (1 <= int(quality) <= 100):
        raise UserError(f"JPEG quality must be 1..100, got {quality}")
    if subsampling not in SUBSAMPLING:
        raise UserError(f"JPEG subsampling must be one of {', '.join(SUBSAMPLING)}, got {subsampling!r}")
    out = io.BytesIO()
    to_pil(image).save(out, "JPEG", quality=int(quality), subsampling=SUBSAMPLING[subsampling],
                       optimize=bool(optimize))
    return out.getvalue()


def _pillow(fmt: str, **options) -> Callable[[Image.Image, int], bytes]:
    def encode(pil: Image.Image, quality: int) -> bytes:
        out = io.BytesIO()
        pil.save(out, fmt, **{k: (v(quality) if callable(v) else v) for k, v in options.items()})
        return out.getvalue()

    return encode


def _pillow_decode(data: bytes) -> Image.Image:
    pil = Image.open(io.BytesIO(data))
    pil.load()
    return pil


def _jxl_module():
    try:
        import imagecodecs  # optional: the [jxl] extra
    except ImportError:
        return None
    return imagecodecs if getattr(imagecodecs, "JPEGXL", None) and imagecodecs.JPEGXL.available else None


def _jxl_encode(pil: Image.Image, quality: int) -> bytes:
    return bytes(_jxl_module().jpegxl_encode(np.asarray(pil), level=int(quality), effort=7))


def _jxl_decode(data: bytes) -> Image.Image:
    return Image.fromarray(_jxl_module().jpegxl_decode(data))


@dataclass(frozen=True)
class Codec:
    """One classical codec: ``encode(pil, quality) -> bytes``, ``decode(bytes) -> pil``, over
    integer qualities ``low..high`` (file size grows with quality)."""

    name: str
    description: str
    low: int
    high: int
    encode: Callable[[Image.Image, int], bytes]
    decode: Callable[[bytes], Image.Image]
    available: Callable[[], bool]
    missing: str  # what to install when it is not available


def _jpeg_encoder(subsampling: str, optimize: bool):
    def encode(pil: Image.Image, quality: int) -> bytes:
        return encode_jpeg(from_pil(pil, 1 if pil.mode == "L" else 3), quality, subsampling, optimize)

    return encode


CODECS: dict[str, Codec] = {c.name: c for c in (
    Codec("jpeg", "JPEG, Pillow defaults: standard Huffman tables, 4:2:0", 1, 100,
          _jpeg_encoder("4:2:0", False), _pillow_decode, lambda: features.check("jpg"), "Pillow with libjpeg"),
    Codec("jpeg-opt", "JPEG, optimized Huffman tables, 4:4:4", 1, 100,
          _jpeg_encoder("4:4:4", True), _pillow_decode, lambda: features.check("jpg"), "Pillow with libjpeg"),
    Codec("jpeg-opt420", "JPEG, optimized Huffman tables, 4:2:0 (the paper comparison's JPEG)", 1, 100,
          _jpeg_encoder("4:2:0", True), _pillow_decode, lambda: features.check("jpg"), "Pillow with libjpeg"),
    Codec("webp", "WebP lossy (libwebp), method 6", 0, 100,
          _pillow("WEBP", quality=lambda q: int(q), method=6), _pillow_decode, lambda: features.check("webp"),
          "Pillow with libwebp"),
    Codec("avif", "AVIF (libavif), 4:4:4, speed 6", 0, 100,
          _pillow("AVIF", quality=lambda q: int(q), subsampling="4:4:4", speed=6), _pillow_decode,
          lambda: features.check("avif"), "Pillow with libavif"),
    Codec("jp2", "JPEG 2000 (OpenJPEG), 9/7 wavelet, quality = target layer PSNR in dB", 10, 80,
          _pillow("JPEG2000", quality_mode="dB", quality_layers=lambda q: [float(q)], irreversible=True),
          _pillow_decode, lambda: features.check("jpg_2000"), "Pillow with OpenJPEG"),
    Codec("jxl", "JPEG XL (libjxl via imagecodecs), effort 7", 0, 100, _jxl_encode, _jxl_decode,
          lambda: _jxl_module() is not None, "the [jxl] extra: pip install 'rapidinr[jxl]' (imagecodecs)"),
)}


@dataclass(frozen=True)
class CodecSpec:
    """A codec name as the user writes it: a registered codec, optionally downscaled ``factor``×."""

    name: str
    codec: Codec
    factor: int = 1

    @property
    def description(self) -> str:
        if self.factor == 1:
            return self.codec.description
        return f"downscale x{self.factor} (bicubic), {self.codec.description}, upscale back"


def parse_codec(name: str) -> CodecSpec:
    """``jpeg``, ``webp-x2``, ... → a :class:`CodecSpec`; one clear error for an unknown or absent codec."""
    text = str(name).strip().lower()
    base, factor = text, 1
    head, sep, tail = text.rpartition("-x")
    if sep and tail.isdigit():
        base, factor = head, int(tail)
        if factor < 2:
            raise UserError(f"codec {name!r}: a downscale factor must be >= 2")
    if base not in CODECS:
        raise UserError(f"unknown codec {name!r}: use {', '.join(CODECS)} (add -x2 to downscale first)")
    codec = CODECS[base]
    if not codec.available():
        raise UserError(f"codec {name!r} is not available here: install {codec.missing}")
    return CodecSpec(text, codec, factor)


def encode(spec: CodecSpec, image: torch.Tensor, quality: int) -> bytes:
    """(C, H, W) uint8 → the codec's file bytes at ``quality`` (downscaled first where asked)."""
    if not (spec.codec.low <= int(quality) <= spec.codec.high):
        raise UserError(f"{spec.name}: quality must be {spec.codec.low}..{spec.codec.high}, got {quality}")
    pil = to_pil(image)
    if spec.factor != 1:
        pil = pil.resize((max(1, -(-pil.width // spec.factor)), max(1, -(-pil.height // spec.factor))), RESAMPLE)
    return spec.codec.encode(pil, int(quality))


def decode(spec: CodecSpec, data: bytes, channels: int, height: int, width: int) -> torch.Tensor:
    """File bytes → (C, H, W) uint8, upscaled back to ``height``×``width`` where it was downscaled."""
    pil = spec.codec.decode(data)
    if (pil.height, pil.width) != (height, width):
        pil = pil.convert("L" if channels == 1 else "RGB").resize((width, height), RESAMPLE)
    return from_pil(pil, channels)
