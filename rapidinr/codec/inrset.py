"""INRSet: a whole dataset of SIRENs on one device, decoded in batches at any resolution.

The limits below are what the format is for (small per-image SIRENs, labelled datasets); a file
past them is refused before anything is allocated, so a small hostile file cannot exhaust memory.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from rapidinr.codec import fileformat
from rapidinr.codec.fileformat import FileForm
from rapidinr.codec.store import DenseStore, store_from_tensors
from rapidinr.core import siren
from rapidinr.core.config import Arch
from rapidinr.core.devices import resolve_device
from rapidinr.core.errors import UserError

MAX_DECODE_SIDE = 16384  # a decode larger than this a side is a mistake, not a request
MAX_DECODE_OUTPUT_MB = 4096  # one ``decode`` call returns at most this much float32 (decode in batches)
# A Rapid-INR SIREN is small (the paper's 3x15 to 10x40: 573 to 15k parameters); 2^20 a image is
# far past any use and keeps a hostile header from asking for a 64x1024 (66M-parameter) network.
MAX_PARAMS_PER_IMAGE = 1 << 20
MAX_CLASSES = 100_000  # class names: unique, non-empty, at most this many, each at most 256 characters
MAX_CLASS_NAME = 256
# What loading really allocates: per weight (N x P), the stored-mask, unpacked-mask and code/value
# tensors (~12 B); per position (P), the layout's and the mask's int64 index tensors (~40 B). Past
# MAX_EXPANSION times the file's size (plus a fixed allowance) the header lies (a "weight bomb"):
# biases are always stored in full, so even a fully pruned 8-bit set with zstd stays far below.
LOADER_BYTES_PER_WEIGHT = 12
LOADER_BYTES_PER_POSITION = 40
MAX_EXPANSION = 2048
EXPANSION_ALLOWANCE = 64 << 20


def loader_bytes(n: int, p: int) -> int:
    """Bytes :func:`load` allocates for ``n`` images of ``p`` parameters (beyond the file's tensors)."""
    return LOADER_BYTES_PER_WEIGHT * n * p + LOADER_BYTES_PER_POSITION * p


def check_budget(memory_budget_mb, what: str = "memory_budget_mb") -> float:
    """A memory budget: a finite number of MiB above 0."""
    if (isinstance(memory_budget_mb, bool) or not isinstance(memory_budget_mb, (int, float))
            or not math.isfinite(memory_budget_mb) or memory_budget_mb <= 0):
        raise UserError(f"{what}: expected a finite number of MiB above 0, got {memory_budget_mb!r}")
    return float(memory_budget_mb)


def check_arch_size(arch: Arch) -> None:
    if arch.n_params > MAX_PARAMS_PER_IMAGE:
        raise UserError(f"arch {arch.name} has {arch.n_params} parameters per image, more than the "
                        f"{MAX_PARAMS_PER_IMAGE} a .rinr set is for")


def check_side(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DECODE_SIDE:
        raise UserError(f"{what} must be an integer 1..{MAX_DECODE_SIDE}, got {value!r}")
    return value


def check_labels(labels, class_names, n: int) -> tuple[torch.Tensor | None, list[str]]:
    """Labels (N,) integers in [0, classes) and class names unique, non-empty, bounded strings:
    what :func:`load` accepts, checked before a set is built or saved. Returns (labels, names)."""
    if class_names is None:
        names = []
    elif isinstance(class_names, (list, tuple)):
        names = list(class_names)
    else:
        raise UserError(f"class_names must be a list of strings, got {type(class_names).__name__}")
    if len(names) > MAX_CLASSES:
        raise UserError(f"class_names: {len(names)} names, more than the {MAX_CLASSES} allowed")
    for name in names:
        if not isinstance(name, str) or not 0 < len(name) <= MAX_CLASS_NAME:
            raise UserError(f"class_names: every name must be a string of 1..{MAX_CLASS_NAME} characters, "
                            f"got {name!r:.60}")
    if len(set(names)) != len(names):
        twice = next(x for i, x in enumerate(names) if x in names[:i])
        raise UserError(f"class_names: {twice!r:.60} appears more than once")
    if labels is None:
        return None, names
    if not isinstance(labels, torch.Tensor):
        raise UserError(f"labels must be an integer tensor of shape ({n},), got {type(labels).__name__} "
                        "(pass torch.tensor(labels))")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool or labels.dim() != 1:
        raise UserError(f"labels must be an integer tensor of shape ({n},), got {labels.dtype} {tuple(labels.shape)}")
    if labels.numel() != n:
        raise UserError(f"labels: {labels.numel()} labels for {n} images")
    classes = len(names) if names else MAX_CLASSES
    if n and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise UserError(f"labels must be in 0..{classes - 1}"
                        + (f" ({len(names)} class names)" if names else "")
                        + f", got {int(labels.min())}..{int(labels.max())}")
    return labels.long(), names


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


def file_header(arch: Arch, height: int, width: int, images: int, has_labels: bool, class_names: list[str],
                store: dict, meta: dict) -> dict:
    """The .rinr header of a set (``store``: its store's fields), also for a set written in pieces
    that is never whole in memory (the sharded encode's merge)."""
    return {
        "arch": arch.to_json(),
        "coordinates": "pixel centres on [-1, 1], (x, y), row-major",
        "output": "sin layers then linear; pixel = (out + 1) / 2",
        "images": images,
        "height": height,
        "width": width,
        "channels": arch.channels,
        "params_per_image": arch.n_params,
        "has_labels": has_labels,
        "class_names": class_names,
        **store,
        "meta": meta,
    }


def check_finite(path, store) -> None:
    """The reader refuses weights that are not finite: refuse them before writing (no dense copy)."""
    if not store.all_finite():
        raise UserError(f"{path}: refusing to save a set whose weights contain NaN or infinity")


def write_set(path: str | Path, form: FileForm, arch: Arch, height: int, width: int, labels, class_names,
              psnr: torch.Tensor, meta: dict) -> int:
    """Write a set's ``.rinr`` from its store's file form (:class:`~rapidinr.codec.fileformat.FileForm`:
    whole, or made chunk by chunk so the set is never whole in memory) and what travels beside it:
    labels (N,) or None, class names, per-image PSNR (N,), meta. Returns the file's size in bytes."""
    n = psnr.numel()
    check_labels(labels, class_names, n)  # what load refuses is never saved
    small = {"psnr": psnr.float().cpu()}  # (N,)
    if labels is not None:
        small["labels"] = labels.long().cpu()  # (N,)
    header = file_header(arch, height, width, n, labels is not None, list(class_names or []), form.fields, meta)
    specs = {**form.specs, **{k: (v.dtype, list(v.shape)) for k, v in small.items()}}
    return fileformat.write_pieces(path, header, specs, lambda name: [small[name]] if name in small
                                   else form.pieces(name))


def file_summary(images: int, height: int, width: int, file_bytes: int, psnr: torch.Tensor) -> dict:
    """Size and quality of a written set: the keys ``info`` shares with an encode's summary."""
    return {"images": images, "height": height, "width": width, "file_bytes": file_bytes,
            "bytes_per_image": file_bytes / max(images, 1), "bpp": 8 * file_bytes / max(images * height * width, 1),
            **psnr_summary(psnr)}


def psnr_summary(psnr: torch.Tensor) -> dict:
    """``psnr_mean`` and ``psnr_min`` of per-image PSNRs (N,) over the finite ones (a perfect fit's
    is infinite); None when there are none."""
    finite = psnr[torch.isfinite(psnr)]
    return {"psnr_mean": float(finite.mean()) if finite.numel() else None,
            "psnr_min": float(finite.min()) if finite.numel() else None}


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
        check_arch_size(arch)
        self.height, self.width = check_side(height, "height"), check_side(width, "width")
        labels, class_names = check_labels(labels, class_names, len(store))
        self.labels = labels  # (N,) int64 on the set's device, or None
        self.class_names = class_names
        self.psnr = psnr if psnr is not None else torch.full((len(store),), float("nan"))  # (N,)
        self.meta = dict(meta or {})  # fitting settings, source, timings: kept in the file header
        self.file_bytes: int | None = None  # size of the file this set was loaded from or saved to
        self.file_version: int | None = None  # .rinr format version of that file

    # -- basics -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.store)

    @property
    def device(self) -> torch.device:
        return self.store.device

    @property
    def channels(self) -> int:
        return self.arch.channels

    def dense_params(self) -> torch.Tensor:
        """All weights as a new float32 (N, P) matrix, dequantized where the store is compressed:
        a method, not an attribute, because it costs 4 bytes per weight of the whole set."""
        return self.store.dense()

    def to(self, device) -> "INRSet":
        out = INRSet(self.store.to(device), self.arch, self.height, self.width, None, self.class_names,
                     self.psnr, self.meta)
        # labels were checked when this set was made: moved as they are, with no read of their values
        out.labels = self.labels.to(device) if self.labels is not None else None
        out.file_bytes, out.file_version = self.file_bytes, self.file_version
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
        index = index.long().flatten()
        # checked where the indices are, before the copy: CPU indices (a loader's) cost no device sync
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= len(self)):
            raise UserError(f"image index out of range: the set holds {len(self)} images (0..{len(self) - 1})")
        return index.to(self.device, non_blocking=True)  # from pinned memory (a loader's): no sync

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
        check_budget(memory_budget_mb)
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
        check_budget(memory_budget_mb)
        count = len(self) if indices is None else self._indices(indices).numel()
        output_mb = count * self.channels * height * width * 4 / 2**20
        if output_mb > MAX_DECODE_OUTPUT_MB:
            raise UserError(f"decode: {count} images at {height}x{width} make {output_mb / 1024:.1f} GiB, over the "
                            f"{MAX_DECODE_OUTPUT_MB // 1024} GiB one call returns: decode fewer images at a time "
                            "(indices=...) or a smaller size")
        coords = siren.coordinate_grid(height, width, device=self.device)  # (H*W, 2)
        flat = self.decode_at(indices, coords, memory_budget_mb)  # (B, H*W, C)
        return flat.permute(0, 2, 1).reshape(flat.shape[0], self.channels, height, width)

    # -- file -------------------------------------------------------------------------------
    def header(self) -> dict:
        return file_header(self.arch, self.height, self.width, len(self), self.labels is not None, self.class_names,
                           self.store.header(), self.meta)

    def tensors(self) -> dict[str, torch.Tensor]:
        out = dict(self.store.tensors())
        out["psnr"] = self.psnr.float().cpu()
        if self.labels is not None:
            out["labels"] = self.labels.long().cpu()
        return out

    def save(self, path: str | Path) -> int:
        """Write the set to ``path`` (atomically); returns the file's size in bytes."""
        check_finite(path, self.store)
        self.file_bytes = write_set(path, self.store.file_form(), self.arch, self.height, self.width, self.labels,
                                    self.class_names, self.psnr, self.meta)
        self.file_version = fileformat.FORMAT_VERSION
        return self.file_bytes

    def info(self) -> dict:
        """The facts ``rapidinr info --json`` reports (bytes from the file where there is one)."""
        if self.file_bytes is not None:
            file_bytes = self.file_bytes
        else:
            tensors = self.tensors()  # before the header, as in save: one packing
            file_bytes = fileformat.serialized_size(self.header(), tensors)
        head = self.store.header()
        summary = file_summary(len(self), self.height, self.width, file_bytes, self.psnr)
        return {
            "format_version": self.file_version or fileformat.FORMAT_VERSION,
            **{k: summary.pop(k) for k in ("images", "height", "width")},
            "channels": self.channels,
            "arch": {"layers": self.arch.layers, "hidden": self.arch.hidden, "w0": self.arch.w0},
            "params_per_image": self.arch.n_params,
            **summary,
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
    """Read a .rinr file, verify it, and bring the whole set onto ``device`` once, at load
    (a copy per stored tensor; nothing moves again while batches are decoded)."""
    device = resolve_device(device, option="device")
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
    if arch.n_params > MAX_PARAMS_PER_IMAGE:
        raise UserError(f"{path}: arch {arch.name} has {arch.n_params} parameters per image, more than the "
                        f"{MAX_PARAMS_PER_IMAGE} a .rinr set is for (corrupt)")
    if header.get("params_per_image", arch.n_params) != arch.n_params:
        raise UserError(f"{path}: header field 'params_per_image' does not match arch {arch.name}")
    need = loader_bytes(n, arch.n_params)
    if need > MAX_EXPANSION * file_bytes + EXPANSION_ALLOWANCE:  # checked before the store allocates
        raise UserError(f"{path}: header claims {n} images of {arch.n_params} weights ({need >> 20} MiB to "
                        f"load), far more than its {file_bytes} bytes can hold (corrupt)")
    classes = header.get("class_names", [])
    if not isinstance(classes, list):
        raise UserError(f"{path}: header field 'class_names' is malformed")
    labels = tensors.get("labels")
    has_labels = header.get("has_labels")
    if not isinstance(has_labels, bool):
        raise UserError(f"{path}: header field 'has_labels' is missing or invalid")
    if has_labels:
        if labels is None or labels.dtype != torch.int64 or tuple(labels.shape) != (n,):
            raise UserError(f"{path}: labels missing or malformed")
    elif labels is not None:
        raise UserError(f"{path}: holds labels but its header says it has none")
    try:
        labels, classes = check_labels(labels, classes, n)
    except UserError as err:
        raise UserError(f"{path}: {err}") from None
    store = store_from_tensors(path, tensors, header, n, arch.n_params)
    meta = header.get("meta") if isinstance(header.get("meta"), dict) else {}
    out = INRSet(store, arch, height, width, labels, classes, psnr, meta).to(device)
    out.file_bytes, out.file_version = file_bytes, header["format_version"]
    return out
