"""Reading image files with Pillow into uint8 tensors, every mode converted one consistent way.

- EXIF orientation is applied (a phone photo comes out upright).
- 16-bit and 32-bit integer images are scaled to 8 bits (value / 257, rounded).
- Transparency (LA, RGBA, P with a transparent colour) is composited onto white.
- CMYK, YCbCr, palette and the rest go through Pillow's conversion to RGB.
- A set is grayscale (C = 1) when every image is; otherwise gray images are repeated to RGB.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from rapidinr.core.errors import UserError
from rapidinr.core.threads import usable_cores

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


def _kind(image: Image.Image) -> tuple[bool, bool]:
    """(has transparency, is gray) of an opened image, from its mode and header alone."""
    has_alpha = image.mode in ("LA", "La", "RGBA", "RGBa", "PA") or (image.mode == "P" and "transparency" in image.info)
    return has_alpha, image.mode in GRAY_MODES and not has_alpha


def _failure(path, err) -> UserError:
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    return UserError(f"{path}: cannot read image ({reason})")


@contextlib.contextmanager
def _opened_image(path: Path):
    """``path`` opened by Pillow, refused when past :data:`MAX_PIXELS`; any failure while it is
    open (the caller's work included) becomes one UserError naming the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's palette-transparency advice
            with Image.open(path) as opened:
                if opened.width * opened.height > MAX_PIXELS:
                    raise UserError(f"{path}: {opened.width}x{opened.height} is too large to be a training image")
                yield opened
    except UserError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise _failure(path, err) from None


def mixed_sizes(first_name: str, first: tuple[int, int], odd_name: str, odd: tuple[int, int]) -> UserError:
    """The one refusal of a set whose images differ in size, naming two of them."""
    return UserError(f"images have different sizes ({first_name} is {first[0]}x{first[1]}, {odd_name} is "
                     f"{odd[0]}x{odd[1]}); pass --size HxW to resize them")


def probe_image(path: Path, size: tuple[int, int] | None = None) -> tuple[int, int, bool]:
    """(H, W, is_gray) of the array :func:`read_image` returns for ``path``, from the file's header
    (size, mode, EXIF orientation): nothing is decoded. Failures name the file, as read_image's do."""
    with _opened_image(path) as opened:
        width, height = opened.size
        if opened.getexif().get(0x0112) in (5, 6, 7, 8):  # orientations that swap the sides
            width, height = height, width
        gray = _kind(opened)[1]
    return (*(size if size is not None else (height, width)), gray)


def read_image(path: Path, size: tuple[int, int] | None = None) -> tuple[np.ndarray, bool]:
    """Read one file → (uint8 array H×W×3 or H×W, is_gray). ``size`` = (H, W) resizes (antialiased).

    Any failure becomes a UserError that names the file.
    """
    with _opened_image(path) as opened:
        image = ImageOps.exif_transpose(opened)
        image.load()
        has_alpha, is_gray = _kind(image)
        if image.mode == "P" and not has_alpha:
            image = image.convert("RGB")
        if has_alpha:
            image = _flatten_alpha(image)
        elif is_gray:
            image = _to_8bit(image)
        else:
            image = image.convert("RGB")
        if size is not None and (image.height, image.width) != tuple(size):
            image = image.resize((size[1], size[0]), Image.Resampling.BICUBIC, reducing_gap=None)
        return np.asarray(image, dtype=np.uint8).copy(), is_gray


def _read_or_error(job):
    """read_image for a pool worker: (array, is_gray) or the UserError's text (never raises)."""
    path, size = job
    try:
        return read_image(path, size)
    except UserError as err:
        return str(err)


POOL_MIN_FILES = 64  # fewer files decode in this process: starting workers would cost more


def read_images(paths: list[Path], size=None, skip_bad: bool = False, limit: int | None = None,
                workers: int | None = None, names: list[str] | None = None):
    """Decode ``paths`` in order, the first ``limit`` readable ones, into one uint8 (N, C, H, W)
    allocated once from the files' headers (:func:`probe_image`): no list of arrays beside a
    stacked copy, so the set is never in memory twice. With ``workers`` > 1 (default: the cores
    this process may use) and enough files, a pool of processes decodes and each image is copied
    into its row as it arrives. Returns (images, indices of the paths used, skip messages);
    without ``skip_bad`` the first unreadable file is the error.
    ``names``: how errors about mixed sizes name the files (default: the paths)."""
    names = [str(p) for p in paths] if names is None else names
    want = len(paths) if limit is None else min(limit, len(paths))
    used, skipped, probes, next_file = [], [], {}, 0
    images, rows = None, 0
    pool = None
    workers = usable_cores() if workers is None else workers
    try:
        while rows < want and next_file < len(paths):
            batch = []  # files whose headers read, as many as rows are still wanted
            while len(batch) < want - rows and next_file < len(paths):
                try:
                    probes[next_file] = probe_image(paths[next_file], size)
                    batch.append(next_file)
                except UserError as err:
                    if not skip_bad:
                        raise
                    skipped.append(str(err))
                next_file += 1
            if not batch:
                break
            shapes = {probes[i][:2] for i in (used + batch)}
            if len(shapes) > 1:
                first = probes[(used + batch)[0]][:2]
                odd = next(i for i in used + batch if probes[i][:2] != first)
                raise mixed_sizes(names[(used + batch)[0]], first, names[odd], probes[odd][:2])
            height, width = shapes.pop()
            channels = 1 if all(probes[i][2] for i in used + batch) else 3
            if images is None:
                images = torch.empty(want, channels, height, width, dtype=torch.uint8)  # (N, C, H, W), once
            elif channels != images.shape[1]:  # a colour image after only gray ones: gray rows repeat to RGB
                images = images.expand(-1, 3, -1, -1).contiguous()
            jobs = [(paths[i], size) for i in batch]
            if pool is None and workers > 1 and len(paths) >= POOL_MIN_FILES:
                # fork, as torch's DataLoader workers start: the workers run Pillow only
                pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
            results = pool.map(_read_or_error, jobs, chunksize=16) if pool is not None else map(_read_or_error, jobs)
            for i, result in zip(batch, results):
                if isinstance(result, str):
                    if not skip_bad:
                        raise UserError(result)
                    skipped.append(result)
                    continue
                array, _ = result
                if array.shape[:2] != (height, width):  # the header said otherwise: a damaged file
                    message = f"{paths[i]}: cannot read image (decoded size differs from its header)"
                    if not skip_bad:
                        raise UserError(message)
                    skipped.append(message)
                    continue
                plane = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)  # (1 or 3, H, W)
                if plane.shape[0] > images.shape[1]:  # colour where the header said gray: the set turns RGB
                    images = images.expand(-1, 3, -1, -1).contiguous()
                images[rows] = torch.from_numpy(np.ascontiguousarray(plane))  # gray into RGB: broadcast
                used.append(i)
                rows += 1
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if images is None:
        return None, used, skipped
    if images.shape[1] == 3 and used and all(probes[i][2] for i in used):  # the colour ones were all skipped
        images = images[:, :1].clone()
    return images[:rows], used, skipped


def stack_images(arrays: list[np.ndarray], grays: list[bool], names: list[str]) -> torch.Tensor:
    """List of H×W or H×W×3 uint8 arrays → uint8 tensor N×C×H×W; mixed sizes are an error."""
    shapes = {a.shape[:2] for a in arrays}
    if len(shapes) > 1:
        first = arrays[0].shape[:2]
        odd = next(n for n, a in zip(names, arrays) if a.shape[:2] != first)
        raise mixed_sizes(names[0], first, odd, arrays[names.index(odd)].shape[:2])
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

