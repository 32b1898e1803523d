"""INRSet: a whole dataset of SIRENs on one device, decoded in batches at any resolution."""
from __future__ import annotations

from pathlib import Path

import torch

from rapidinr.codec import fileformat
from rapidinr.codec.store import DenseStore, store_from_tensors
from rapidinr.core import siren
from rapidinr.core.config import Arch
from rapidinr.core.errors import UserError

MAX_DECODE_SIDE = 16384  # a decode larger than this a side is a mistake, not a request
# Dense float32 weights at most this many times the file's size: biases are always stored in full,
# so even a fully pruned 8-bit set stays far below; past it, the header lies (a "weight bomb").
MAX_EXPANSION = 1024


def _as_size(size, default: tuple[int, int]) -> tuple[int, int]:
    if size is None:
        return default
    if isinstance(size, int):
        size = (size, size)
    try:
        if isinstance(size, str):
            raise TypeError
        height, width = (int(s) for s in size)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"decode size must be (height, width) integers, got {size!r}") from None
    if not (0 < height <= MAX_DECODE_SIDE and 0 < width <= MAX_DECODE_SIDE):
        raise UserError(f"decode size must be 1..{MAX_DECODE_SIDE} a side, got {height}x{width}")
    return height, width


class INRSet:
    """N images, each a SIREN of the same architecture, with labels and per-image PSNR.

    ``decode`` is pixel-parallel and batched over images on the set's device.
    """

    def __init__(self, store, arch: Arch, height: int, width: int, labels: torch.Tensor | None = None,
                 class_names: list[str] | None = None, psnr: torch.Tensor | None = None,
                 meta: dict | None = None):
        if isinstance(store, torch.Tensor):
            store = DenseStore(store)
        self.store = store
        self.arch = arch
        self.height, self.width = int(height), int(width)
        self.labels = labels  # (N,) int64 on the set's device, or None
        self.class_names = list(class_names or [])
        self.psnr = psnr if psnr is not None else torch.full((len(store),), float("nan"))  # (N,)
        self.meta = dict(meta or {})  # fitting settings, source, timings: kept in the file header
        self.file_bytes: int | None = None  # size of the file this set was loaded from or saved to

    # -- basics -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.store)

    @property
    def device(self) -> torch.device:
        return self.store.device

    @property
    def channels(self) -> int:
        return self.arch.channels

    @property
    def params(self) -> torch.Tensor:
        """All weights as float32 (N, P) (dequantized where the store is compressed)."""
        return self.store.dense()

    def to(self, device) -> "INRSet":
        labels = self.labels.to(device) if self.labels is not None else None
        out = INRSet(self.store.to(device), self.arch, self.height, self.width, labels,
                     self.class_names, self.psnr, self.meta)
        out.file_bytes = self.file_bytes
        return out

    def _indices(self, indices) -> torch.Tensor:
        if indices is None:
            return torch.arange(len(self), device=self.device)
        try:
            index = torch.as_tensor(indices)
        except (TypeError, ValueError, RuntimeError):
            raise UserError(f"image indices must be integers, got {indices!r}") from None
        if index.is_floating_point() or index.is_complex() or index.dtype == torch.bool:
            raise UserError(f"image indices must be integers, got {index.dtype}")
        index = index.long().flatten().to(self.device)
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= len(self)):
            raise UserError(f"image index out of range: the set holds {len(self)} images (0..{len(self) - 1})")
        return index

    # -- decoding ---------------------------------------------------------------------------
    def decode_at(self, indices, coords: torch.Tensor, memory_budget_mb: float = 256) -> torch.Tensor:
        """Evaluate images at coordinates (P, 2) shared or (B, P, 2) per image → (B, P, C) on [0, 1].

        This is the primitive behind ``decode`` and the augmenting loader, which folds crops and
        flips into each image's coordinate grid.
        """
        index = self._indices(indices)
        if (not isinstance(coords, torch.Tensor) or not coords.is_floating_point() or coords.dim() not in (2, 3)
                or coords.shape[-1] != 2 or (coords.dim() == 3 and coords.shape[0] != index.numel())):
            raise UserError(f"decode_at: coords must be float (P, 2) or (B, P, 2) with B = {index.numel()}")
        points = coords.shape[-2]
        per_point = 4 * (2 * self.arch.hidden + self.arch.channels + 2)  # working bytes per pixel
        budget = memory_budget_mb * 2**20
        span = min(points, max(1, int(budget // per_point)))  # pixels at once: a huge image goes in slices
        step = max(1, int(budget // (per_point * span)))  # images at once
        out = torch.empty(index.numel(), points, self.channels, device=self.device)
        with torch.no_grad():
            for start in range(0, index.numel(), step):
                rows = index[start : start + step]
                weights = self.store.gather(rows)  # (b, P_weights)
                for first in range(0, points, span):
                    grid = coords[start : start + step, first : first + span] if coords.dim() == 3 \
                        else coords[first : first + span]
                    raw = siren.forward(weights, self.arch, grid.to(self.device))  # (b, span, C)
                    # absurd (finite) weights can overflow to NaN: a pixel is always a number in [0, 1]
                    out[start : start + step, first : first + span] = raw.nan_to_num_(0.0).add_(1).mul_(0.5).clamp_(0, 1)
        return out

    def decode(self, indices=None, size=None, memory_budget_mb: float = 256) -> torch.Tensor:
        """Decode images → float (B, C, H, W) on [0, 1] on the set's device, at any ``size``.

        At the training size this is the same forward pass the fit optimized; at other sizes the
        continuous SIREN is sampled at that grid's pixel centres.
        """
        height, width = _as_size(size, (self.height, self.width))
        coords = siren.coordinate_grid(height, width, device=self.device)  # (H*W, 2)
        flat = self.decode_at(indices, coords, memory_budget_mb)  # (B, H*W, C)
        return flat.permute(0, 2, 1).reshape(flat.shape[0], self.channels, height, width)

    # -- file -------------------------------------------------------------------------------
    def header(self) -> dict:
        return {
            "arch": self.arch.to_json(),
            "coordinates": "pixel centres on [-1, 1], (x, y), row-major",
            "output": "sin layers then linear; pixel = (out + 1) / 2",
            "images": len(self),
            "height": self.height,
            "width": self.width,
            "channels": self.channels,
            "params_per_image": self.arch.n_params,
            "has_labels": self.labels is not None,
            "class_names": self.class_names,
            **self.store.header(),
            "meta": self.meta,
        }

    def tensors(self) -> dict[str, torch.Tensor]:
        out = dict(self.store.tensors())
        out["psnr"] = self.psnr.float().cpu()
        if self.labels is not None:
            out["labels"] = self.labels.long().cpu()
        return out

    def save(self, path: str | Path) -> int:
        """Write the set to ``path`` (atomically); returns the file's size in bytes."""
        if not bool(torch.isfinite(self.params).all()):  # the reader would refuse it: refuse it here
            raise UserError(f"{path}: refusing to save a set whose weights contain NaN or infinity")
        self.file_bytes = fileformat.write(path, self.header(), self.tensors())
        return self.file_bytes

    def info(self) -> dict:
        """The facts ``rapidinr info --json`` reports (bytes from the file where there is one)."""
        file_bytes = self.file_bytes if self.file_bytes is not None else fileformat.serialized_size(
            self.header(), self.tensors())
        head = self.store.header()
        finite = self.psnr[torch.isfinite(self.psnr)]
        return {
            "format_version": fileformat.FORMAT_VERSION,
            "images": len(self),
            "height": self.height,
            "width": self.width,
            "channels": self.channels,
            "arch": {"layers": self.arch.layers, "hidden": self.arch.hidden, "w0": self.arch.w0},
            "params_per_image": self.arch.n_params,
            "file_bytes": file_bytes,
            "bytes_per_image": file_bytes / max(len(self), 1),
            "bpp": 8 * file_bytes / max(len(self) * self.height * self.width, 1),
            "psnr_mean": float(finite.mean()) if finite.numel() else None,
            "psnr_min": float(finite.min()) if finite.numel() else None,
            "quant_bits": head["quant_bits"],
            "quant_layers": head["quant_layers"],
            "sparsity": head["sparsity"],
            "param_encoding": head["param_encoding"],
            "device_bytes": self.store.nbytes,
            "has_labels": self.labels is not None,
            "classes": len(self.class_names),
            "preset": self.meta.get("preset"),  # the encode --preset (compress.PRESETS), or None
        }


def _check_int(path, header: dict, key: str, low: int, high: int) -> int:
    value = header.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not (low <= value <= high):
        raise UserError(f"{path}: header field {key!r} is missing or out of range")
    return value


def load(path: str | Path, device="cpu") -> INRSet:
    """Read a .rinr file, verify it, and bring the whole set onto ``device`` in one transfer."""
    header, tensors, file_bytes = fileformat.read(path)
    n = _check_int(path, header, "images", 0, 2**31)
    height = _check_int(path, header, "height", 1, MAX_DECODE_SIDE)
    width = _check_int(path, header, "width", 1, MAX_DECODE_SIDE)
    try:
        arch = Arch.from_json(header["arch"])
    except (KeyError, TypeError, ValueError, OverflowError, UserError):  # int(inf) is an OverflowError
        raise UserError(f"{path}: header field 'arch' is missing or invalid") from None
    if not isinstance(header.get("param_encoding"), str):
        raise UserError(f"{path}: header field 'param_encoding' is missing or invalid")
    psnr = tensors.get("psnr")
    if psnr is None or psnr.dtype != torch.float32 or tuple(psnr.shape) != (n,):
        raise UserError(f"{path}: per-image PSNR missing or malformed")
    if 4 * n * arch.n_params > MAX_EXPANSION * file_bytes + (64 << 20):  # checked before the store allocates
        raise UserError(f"{path}: header claims {n} images of {arch.n_params} weights, far more than "
                        f"its {file_bytes} bytes can hold (corrupt)")
    store = store_from_tensors(path, tensors, header, n, arch.n_params)
    classes = header.get("class_names") or []
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise UserError(f"{path}: header field 'class_names' is malformed")
    labels = tensors.get("labels")
    if header.get("has_labels"):
        if labels is None or labels.dtype != torch.int64 or tuple(labels.shape) != (n,):
            raise UserError(f"{path}: labels missing or malformed")
        if n and (int(labels.min()) < 0 or (classes and int(labels.max()) >= len(classes))):
            raise UserError(f"{path}: labels out of range for {len(classes)} classes")
    else:
        labels = None
    meta = header.get("meta") if isinstance(header.get("meta"), dict) else {}
    out = INRSet(store, arch, height, width, labels, classes, psnr, meta).to(device)
    out.file_bytes = file_bytes
    return out
