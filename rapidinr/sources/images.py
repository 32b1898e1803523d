"""Reading image files with Pillow into uint8 tensors, every mode converted one consistent way.

- EXIF orientation is applied (a phone photo comes out upright).
- 16-bit and 32-bit integer images are scaled to 8 bits (value / 257, rounded).
- Transparency (LA, RGBA, P with a transparent colour) is composited onto white.
- CMYK, YCbCr, palette and the rest go through Pillow's conversion to RGB.
- A set is grayscale (C = 1) when every image is; otherwise gray images are repeated to RGB.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from rapidinr.core.errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F", "La"}
# Refuse images past this many pixels: a decompression bomb, not a training image.
MAX_PIXELS = 1 << 28


def _to_8bit(image: Image.Image) -> Image.Image:
    """Integer or float images beyond 8 bits → mode L."""
    array = np.asarray(image)
    if array.dtype == np.uint8:
        return image.convert("L")
    if np.issubdtype(array.dtype, np.floating):
        scaled = np.clip(array, 0, 255)
    else:
        scaled = np.clip(array.astype(np.float64) / 257.0, 0, 255)
    return Image.fromarray(np.round(scaled).astype(np.uint8), mode="L")


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Composite an image with transparency onto white; returns RGB."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def read_image(path: Path, size: tuple[int, int] | None = None) -> tuple[np.ndarray, bool]:
    """Read one file → (uint8 array H×W×3 or H×W, is_gray). ``size`` = (H, W) resizes (antialiased).

    Any failure becomes a UserError that names the file.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's palette-transparency advice
            with Image.open(path) as opened:
                if opened.width * opened.height > MAX_PIXELS:
                    raise UserError(f"{path}: {opened.width}x{opened.height} is too large to be a training image")
                image = ImageOps.exif_transpose(opened)
                image.load()
                has_alpha = image.mode in ("LA", "La", "RGBA", "RGBa", "PA") or (
                    image.mode == "P" and "transparency" in image.info
                )
                if image.mode == "P" and not has_alpha:
                    image = image.convert("RGB")
                is_gray = image.mode in GRAY_MODES and not has_alpha
                if has_alpha:
                    image = _flatten_alpha(image)
                elif is_gray:
                    image = _to_8bit(image)
                else:
                    image = image.convert("RGB")
                if size is not None and (image.height, image.width) != tuple(size):
                    image = image.resize((size[1], size[0]), Image.Resampling.BICUBIC, reducing_gap=None)
                return np.asarray(image, dtype=np.uint8).copy(), is_gray
    except UserError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"{path}: cannot read image ({reason})") from None


def stack_images(arrays: list[np.ndarray], grays: list[bool], names: list[str]) -> torch.Tensor:
    """List of H×W or H×W×3 uint8 arrays → uint8 tensor N×C×H×W; mixed sizes are an error."""
    shapes = {a.shape[:2] for a in arrays}
    if len(shapes) > 1:
        first = arrays[0].shape[:2]
        odd = next(n for n, a in zip(names, arrays) if a.shape[:2] != first)
        raise UserError(
            f"images have different sizes ({names[0]} is {first[0]}x{first[1]}, {odd} is "
            f"{arrays[names.index(odd)].shape[0]}x{arrays[names.index(odd)].shape[1]}); pass --size HxW to resize them"
        )
    all_gray = all(grays)
    planes = []
    for array, gray in zip(arrays, grays):
        if all_gray:
            planes.append(array[None])  # (1, H, W)
        elif gray:
            planes.append(np.repeat(array[None], 3, axis=0))  # (3, H, W)
        else:
            planes.append(array.transpose(2, 0, 1))  # (3, H, W)
    return torch.from_numpy(np.stack(planes))  # (N, C, H, W)


def resize_images(images: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """uint8 images (N, C, H, W) at ``size`` (H', W'), antialiased, as a dataset is prepared once;
    unchanged when ``size`` is None or already theirs. The one resize of the package."""
    if size is None or tuple(images.shape[-2:]) == tuple(size):
        return images
    from torchvision.transforms.v2 import functional as TF  # heavy: importing torchvision costs ~1 s

    return TF.resize(images, list(size), antialias=True)  # (N, C, H', W') uint8

