"""How a set's weights are held on a device and in the file.

A store keeps the (N, P) weight matrix in some compact form and hands out float32 rows for a
batch of images (``gather``). :class:`DenseStore` is plain float32; compressed stores (pruned,
quantized) implement the same four methods, so :class:`~rapidinr.codec.inrset.INRSet` and the loaders
never care how weights are kept.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator

import numpy as np
import torch

from rapidinr.codec.compact import CompactStore
from rapidinr.codec.fileformat import FileForm
from rapidinr.codec.prune import pack_mask_blocks, unpack_mask, weight_positions
from rapidinr.codec.quantize import CODE_DTYPES, Layout, dequantize, quantize
from rapidinr.core.config import Arch
from rapidinr.core.errors import UserError
from rapidinr.core.threads import usable_cores

FINITE_BLOCK = 1 << 16  # elements checked at once by all_finite
UNPACK_BLOCK = 1 << 20  # weights of a part unpacked at once when a file is read


def all_finite(values: torch.Tensor) -> bool:
    """Whether every element of a float tensor is finite, a block at a time: ``torch.isfinite`` of
    the whole tensor builds a float copy (its ``abs``) and a bool mask of all of it."""
    flat = values.reshape(-1)
    return all(bool(torch.isfinite(flat[i : i + FINITE_BLOCK]).all()) for i in range(0, flat.numel(), FINITE_BLOCK))


class DenseStore:
    """Weights as one float32 (N, P) matrix."""

    encoding = "dense-f32"

    def __init__(self, params: torch.Tensor):
        self.params = params.float()  # (N, P)

    def __len__(self) -> int:
        return self.params.shape[0]

    @property
    def device(self) -> torch.device:
        return self.params.device

    @property
    def nbytes(self) -> int:
        """Bytes this store occupies on its device."""
        return self.params.numel() * self.params.element_size()

    def to(self, device) -> "DenseStore":
        return DenseStore(self.params.to(device))  # one copy of the (N, P) matrix

    def gather(self, indices: torch.Tensor) -> torch.Tensor:
        """float32 weights of the images at ``indices`` (B,) → (B, P)."""
        return self.params.index_select(0, indices)

    def with_rows(self, n: int) -> "DenseStore":
        """An empty store of ``n`` rows shaped like this one, for :meth:`put_rows` to fill chunk by chunk."""
        return DenseStore(torch.zeros(n, self.params.shape[1]))

    def put_rows(self, first: int, part: "DenseStore") -> None:
        self.params[first : first + len(part)] = part.params

    def all_finite(self) -> bool:
        return all_finite(self.params)

    def dense(self) -> torch.Tensor:
        return self.params

    def header(self) -> dict:
        return self.file_form().fields

    @classmethod
    def header_for(cls, sparsity: float) -> dict:
        """The store's header fields for weights with this share of zeros (no store needed)."""
        return {"param_encoding": cls.encoding, "quant_bits": 32, "quant_layers": "none", "sparsity": round(sparsity, 6)}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"params": self.params}

    def file_form(self, chunks: Callable[[], Iterator["DenseStore"]] | None = None) -> FileForm:
        """The float32 (N, P) matrix, of this store or (``chunks``: a callable giving a fresh iterator
        over stores laid out like this one, the set's row chunks in order; called once per pass) of
        the chunks' rows, counted a chunk at a time."""
        chunks = chunks or (lambda: [self])
        n = zeros = 0
        for store in chunks():  # count_nonzero over a chunk: no (n, P) temporary
            n, zeros = n + len(store), zeros + store.params.numel() - int(torch.count_nonzero(store.params))
        p = self.params.shape[1]
        return FileForm(self.header_for(zeros / (n * p) if n * p else 0.0), {"params": (torch.float32, [n, p])},
                        lambda name: (store.params for store in chunks()))

    @classmethod
    def from_tensors(cls, path, tensors: dict, header: dict, n: int, p: int) -> "DenseStore":
        params = tensors.get("params")
        if params is None or params.dtype != torch.float32 or tuple(params.shape) != (n, p):
            raise UserError(f"{path}: weights missing or not float32 ({n}, {p})")
        if not all_finite(params):
            raise UserError(f"{path}: weights contain NaN or infinity")
        return cls(params)


STORES = {DenseStore.encoding: DenseStore}


def store_from_tensors(path, tensors: dict, header: dict, n: int, p: int):
    """Rebuild the store a file was written with, from its ``param_encoding``."""
    kind = STORES.get(header.get("param_encoding"))
    if kind is None:
        raise UserError(f"{path}: unknown weight encoding {header.get('param_encoding')!r}")
    return kind.from_tensors(path, tensors, header, n, p)


# -- compressed weights (pruned and/or quantized): see prune.py and quantize.py ---------------------
_ST_DTYPES = {torch.int8: "I8", torch.int16: "I16", torch.float32: "F32", torch.uint8: "U8"}
_ST_BACK = {v: k for k, v in _ST_DTYPES.items()}


ZSTD_FRAME_BYTES = 4 << 20  # raw bytes per zstd frame: frames compress in parallel and decode one at a time


def _shuffle_into(out: np.ndarray, t: torch.Tensor) -> None:
    """A tensor's bytes as byte planes (all first bytes, then all second...: float exponents
    compress) written into ``out`` (uint8, its size in bytes)."""
    raw = t.contiguous().reshape(-1).view(torch.uint8).numpy() if t.numel() else np.empty(0, np.uint8)
    width = t.element_size()
    out[:] = raw if width == 1 else raw.reshape(-1, width).T.reshape(-1)


def _unshuffle(planes: np.ndarray, dtype: torch.dtype, shape: list[int]) -> torch.Tensor:
    """Inverse of :func:`_shuffle_into`: byte planes (uint8) → a new tensor of ``dtype`` and ``shape``."""
    width = torch.empty(0, dtype=dtype).element_size()
    if not planes.size:
        return torch.zeros(shape, dtype=dtype)
    raw = np.ascontiguousarray(planes.reshape(width, -1).T) if width > 1 else planes.copy()
    return torch.from_numpy(raw.reshape(-1)).view(dtype).reshape(shape)


def zstd_pack(tensors: dict, level: int = 19, threads: int | None = None,
              consume: bool = False) -> tuple[list, torch.Tensor, list[int]]:
    """Tensors → (their table: [name, dtype, shape, raw bytes] each, in name order; their bytes
    through zstd (uint8); the size of each zstd frame in it). Each tensor's byte planes are shuffled first; the stream is cut into
    frames of ``ZSTD_FRAME_BYTES`` compressed in parallel on ``threads`` threads (default: the
    cores this process may use). Each frame is an independent zstd frame, exactly what a
    single-threaded compressor makes of that piece, so the bytes never depend on the thread count
    and a stream of one frame (up to 4 MiB) is byte for byte the single-frame stream earlier
    versions wrote. ``consume``: take each tensor out of ``tensors`` once it is in the stream."""
    import zstandard  # the optional lossless stage: imported only when a file uses it

    table, total = [], 0
    for name in sorted(tensors):
        t = tensors[name]
        table.append([name, _ST_DTYPES[t.dtype], list(t.shape), t.numel() * t.element_size()])
        total += table[-1][3]
    raw, offset = np.empty(total, np.uint8), 0  # the shuffled stream, made once
    for entry in table:
        _shuffle_into(raw[offset : offset + entry[3]], tensors[entry[0]])
        if consume:
            del tensors[entry[0]]  # the caller's copy goes as the stream fills: never both whole
        offset += entry[3]
    pieces = [raw[i : i + ZSTD_FRAME_BYTES] for i in range(0, total, ZSTD_FRAME_BYTES)] or [raw]
    frames = zstandard.ZstdCompressor(level=level).multi_compress_to_buffer(
        pieces, threads=threads if threads is not None else usable_cores())
    del raw, pieces
    packed = np.empty(sum(len(frames[i]) for i in range(len(frames))), np.uint8)
    at = 0
    for i in range(len(frames)):
        frame = np.frombuffer(frames[i], np.uint8)
        packed[at : at + len(frame)] = frame
        at += len(frame)
    return table, torch.from_numpy(packed), [len(frames[i]) for i in range(len(frames))]


class PackedStore:
    """Pruned and/or quantized weights: on the device, dense integer codes of the quantized layers
    (int8 stays int8 until a batch is gathered), per-image per-tensor scales and float32 layers;
    in the file, only the nonzero values plus the mask of the weight matrices (bitmask, zero index
    or Golomb-Rice coded gaps, whichever is smallest: ``prune.pack_mask``), optionally through zstd
    (byte planes shuffled first, so float exponents compress).

    ``gather`` dequantizes with :func:`rapidinr.codec.quantize.dequantize`, so a loaded file decodes
    exactly as a :class:`DenseStore` holding the dequantized weights.
    """

    encoding = "packed-v1"

    def __init__(self, codes, wide, scales, full, arch, bits: int, layers: str, bias_bits: int | None = None,
                 lossless: str | None = None):
        self.layout = Layout(arch, layers, bits, bias_bits).to(codes.device)
        self.arch, self.lossless = arch, lossless
        self.codes = codes  # (N, Q) int8/int16 at ``bits`` (empty when nothing is quantized)
        self.wide = wide  # (N, R) int16: biases kept at 16 bits beside 8-bit weights (else empty)
        self.scales = scales.float()  # (N, S) float32
        self.full = full.float()  # (N, F) float32
        self._head = None  # the header fields of the last packing (its mask coding, zstd table)

    @property
    def bits(self) -> int:
        return self.layout.bits

    @classmethod
    def from_params(cls, params: torch.Tensor, arch, bits: int = 32, layers: str = "hidden",
                    lossless: str | None = None, bias_bits: int | None = None) -> "PackedStore":
        """Pack float (N, P) weights: ``bits`` 8/16 quantizes ``layers`` (their biases at ``bias_bits``,
        default ``bits``); 32 keeps floats (pruning only)."""
        if lossless not in (None, "zstd"):
            raise UserError(f"--lossless: expected zstd or none, got {lossless!r}")
        layers, bias_bits = ("none", None) if bits == 32 else (layers, bias_bits)
        layout = Layout(arch, layers, bits, bias_bits)
        return cls(*quantize(params, layout), arch, bits, layers, bias_bits, lossless)

    def __len__(self) -> int:
        return self.codes.shape[0]

    @property
    def device(self) -> torch.device:
        return self.codes.device

    @property
    def nbytes(self) -> int:
        """Bytes on the device: codes at their width, scales, float layers and the layout index."""
        tensors = (self.codes, self.wide, self.scales, self.full, *self.layout.index_tensors())
        return sum(t.numel() * t.element_size() for t in tensors)

    def to(self, device) -> "PackedStore":
        return PackedStore(self.codes.to(device), self.wide.to(device), self.scales.to(device), self.full.to(device),
                           self.arch, self.layout.bits, self.layout.layers, self.layout.bias_bits, self.lossless)

    def gather(self, indices: torch.Tensor) -> torch.Tensor:
        """float32 weights of the images at ``indices`` (B,) → (B, P), dequantized here."""
        return dequantize(self.codes.index_select(0, indices), self.wide.index_select(0, indices),
                          self.scales.index_select(0, indices), self.full.index_select(0, indices), self.layout)

    def dense(self) -> torch.Tensor:
        return self.gather(torch.arange(len(self), device=self.device))

    def parts(self) -> dict[str, torch.Tensor]:
        """The row-aligned tensors this store is made of (a checkpointed chunk saves them)."""
        return {"codes": self.codes, "wide": self.wide, "scales": self.scales, "full": self.full}

    def with_rows(self, n: int) -> "PackedStore":
        """An empty store of ``n`` rows laid out like this one, for :meth:`put_rows` to fill chunk by chunk
        (one allocation of the set's compact form; no float copy of the whole set)."""
        empty = {k: torch.zeros(n, *v.shape[1:], dtype=v.dtype) for k, v in self.parts().items()}
        return self.like(empty)

    def like(self, parts: dict[str, torch.Tensor]) -> "PackedStore":
        """A store of ``parts`` (as :meth:`parts` names them) with this store's layout and lossless stage."""
        return PackedStore(parts["codes"], parts["wide"], parts["scales"], parts["full"], self.arch, self.layout.bits,
                           self.layout.layers, self.layout.bias_bits, self.lossless)

    def put_rows(self, first: int, part: "PackedStore") -> None:
        for name, rows in part.parts().items():
            getattr(self, name)[first : first + len(part)] = rows
        self._head = None

    def all_finite(self) -> bool:
        """Whether every weight decodes finite (the largest code on each scale bounds them; no dense copy)."""
        return all_finite(self.scales * (2**15 - 1)) and all_finite(self.full)

    def _columns(self):
        """(name, tensor (N, K) on the CPU, positions (K,) into P) of each part of the weights."""
        layout = self.layout.to("cpu")
        return [("codes", self.codes.cpu(), layout.quantized), ("wide", self.wide.cpu(), layout.wide),
                ("values", self.full.cpu(), layout.full)]

    def _kept(self, rank: torch.Tensor):
        """(name, values (n, K) on the CPU, positions (K,) into P, inside (K,) bool) of each part:
        ``inside`` marks the columns the mask covers (weights: their nonzero values are stored);
        the others are biases, every value stored."""
        for name, values, positions in self._columns():
            inside = rank[positions] >= 0  # (K,) which of the part's columns the mask covers
            yield name, values, positions, inside

    def _pattern(self, rank: torch.Tensor, width: int) -> torch.Tensor:
        """bool (n, G): which of the weight matrices' positions (the mask's columns) are nonzero."""
        nonzero = torch.empty(len(self), width, dtype=torch.bool)  # (n, G)
        for _, values, positions, inside in self._kept(rank):
            # index_copy_, not nonzero[:, cols] = ...: advanced indexing builds an int64 index per entry
            nonzero.index_copy_(1, rank[positions[inside]], values[:, inside] != 0)
        return nonzero

    def _stored(self, rank: torch.Tensor, part: str) -> torch.Tensor:
        """The values the file stores of ``part`` (its nonzero weights and all its biases), image-major."""
        for name, values, _, inside in self._kept(rank):
            if name == part:
                keep = values != 0 if bool(inside.all()) else (values != 0) | ~inside  # biases: stored whatever their value
                # numpy's boolean indexing: torch's (values[keep], masked_select) builds int64 indices, 16 B a value
                return torch.from_numpy(values.numpy()[keep.numpy()])  # (K_kept,)
        raise KeyError(part)

    def file_form(self, chunks: Callable[[], Iterator["PackedStore"]] | None = None) -> FileForm:
        """This store's file form, or (``chunks``: as for :meth:`DenseStore.file_form`) that of the
        chunks' rows, made a chunk at a time: a first pass counts zeros and stored values, the mask
        is coded over the whole set (:func:`rapidinr.codec.prune.pack_mask_blocks`: its bytes are
        small beside the weights), and
        each weight tensor's pieces are cut from the chunks as the file is written. With zstd the
        stream is compressed whole (held once: the frames' sizes go in the header, before the payload).

        The mask covers the weight matrices' positions (``_maskable``, in that order); a part's
        stored values are its nonzero weights and all its biases, image-major."""
        chunks = chunks or (lambda: [self])
        maskable = _maskable(self.arch)
        rank = torch.full((self.layout.n_params,), -1, dtype=torch.long)
        rank[maskable] = torch.arange(maskable.numel())  # position → its column in the mask, or -1 (a bias)
        n, zeros, stored = 0, 0, {}
        for store in chunks():  # pass 1: sizes
            n += len(store)
            for name, values, _, inside in store._kept(rank):
                nonzero_inside = int(torch.count_nonzero(values[:, inside])) if bool(inside.any()) else 0
                stored[name] = stored.get(name, 0) + nonzero_inside + len(store) * int((~inside).sum())
                zeros += values.numel() - int(torch.count_nonzero(values))
        coding, mask = pack_mask_blocks(lambda: (store._pattern(rank, maskable.numel()) for store in chunks()),
                                        maskable.numel())
        specs = {name: (t.dtype, list(t.shape)) for name, t in mask.items()}
        for name, values, _, _ in self._kept(rank):
            specs[name] = (values.dtype, [stored.get(name, 0)])
        specs["scales"] = (torch.float32, [n, self.layout.groups])

        def pieces(name: str):
            if name in mask:
                return [mask[name]]
            if math.prod(specs[name][1]) == 0:  # an empty part (nothing quantized, no wide biases): no chunk read
                return []
            if name == "scales":
                return (store.scales.cpu() for store in chunks())
            return (store._stored(rank, name) for store in chunks())

        total = n * self.layout.n_params
        fields = {"param_encoding": self.encoding, "quant_bits": self.layout.bits, "quant_layers": self.layout.layers,
                  "sparsity": round(zeros / total if total else 0.0, 6), "mask_coding": coding,
                  "lossless": self.lossless or "none", "quant_bias_bits": self.layout.bias_bits}
        if self.lossless != "zstd":
            return FileForm(fields, specs, pieces)
        tensors = FileForm(fields, specs, pieces).tensors()
        fields["packed"], frame, frames = zstd_pack(tensors, consume=True)
        if len(frames) > 1:  # one frame: the header earlier versions wrote (and read)
            fields["zstd_frames"] = frames
        return FileForm(fields, {"zstd": (torch.uint8, [frame.numel()])}, lambda name: [frame])

    def header(self) -> dict:
        """The file header's store fields (from the last :meth:`tensors`, else packed now to learn them)."""
        return self._head if self._head is not None else self.file_form().fields

    def tensors(self) -> dict[str, torch.Tensor]:
        """The file's tensors, packed afresh (a second copy of the set's weights, so they live only
        while a file is written; call it before :meth:`header`: one packing serves both)."""
        form = self.file_form()
        self._head = form.fields
        return form.tensors()

    @classmethod
    def from_tensors(cls, path, tensors: dict, header: dict, n: int, p: int) -> "PackedStore":
        bits, layers, lossless = header.get("quant_bits"), header.get("quant_layers"), header.get("lossless")
        bias_bits = header.get("quant_bias_bits")
        if (bits not in (8, 16, 32) or layers not in (("none",) if bits == 32 else ("hidden", "all"))
                or bias_bits not in (8, 16, 32) or bias_bits < bits):
            raise UserError(f"{path}: quant_bits/quant_layers/quant_bias_bits malformed ({bits!r}, {layers!r}, "
                            f"{bias_bits!r})")
        try:
            arch = Arch.from_json(header["arch"])
        except (KeyError, TypeError, ValueError, UserError):
            raise UserError(f"{path}: header field 'arch' is missing or invalid") from None
        if lossless == "zstd":
            tensors = _unzip(path, tensors, header.get("packed"), header.get("zstd_frames"))
        elif lossless != "none":
            raise UserError(f"{path}: unknown lossless stage {lossless!r}")
        layout = Layout(arch, layers, bits, None if bits == 32 else bias_bits)
        maskable = _maskable(arch)
        nonzero = unpack_mask(header.get("mask_coding"), tensors, n, maskable.numel(), path)  # (N, G)
        rank = torch.full((p,), -1, dtype=torch.long)
        rank[maskable] = torch.arange(maskable.numel())  # position → its mask column, or -1 (a bias: stored)
        parts = {}
        for name, positions, dtype, limit in [
                ("codes", layout.quantized, CODE_DTYPES.get(bits, torch.int8), 2 ** (min(bits, 16) - 1) - 1),
                ("wide", layout.wide, torch.int16, 2**15 - 1), ("values", layout.full, torch.float32, None)]:
            inside = rank[positions] >= 0  # (K,)
            columns, mask_columns = inside.nonzero().flatten(), rank[positions[inside]]
            flat = tensors.get(name)
            step = max(1, UNPACK_BLOCK // max(positions.numel(), 1))
            held = n * int((~inside).sum()) + sum(int(torch.count_nonzero(nonzero[first : first + step][:, mask_columns]))
                                                  for first in range(0, n, step))
            if flat is None or flat.dtype != dtype or tuple(flat.shape) != (held,):
                raise UserError(f"{path}: compressed weights missing or malformed ({name})")
            if limit is not None and flat.numel() and max(int(flat.max()), -int(flat.min())) > limit:
                raise UserError(f"{path}: quantized codes out of range")
            if limit is None and not all_finite(flat):
                raise UserError(f"{path}: weights contain NaN or infinity")
            parts[name] = out = torch.zeros(n, positions.numel(), dtype=dtype)  # (N, K)
            at = 0
            for first in range(0, n, step):  # a block of rows at a time: no (N, K) pattern beside the part
                where = torch.ones(min(step, n - first), positions.numel(), dtype=torch.bool)  # (b, K): what the file holds
                where.index_copy_(1, columns, nonzero[first : first + step].index_select(1, mask_columns))
                count = int(torch.count_nonzero(where))
                out[first : first + step].masked_scatter_(where, flat[at : at + count])  # no int64 index
                at += count
        del nonzero
        scales = tensors.get("scales")
        if scales is None or scales.dtype != torch.float32 or tuple(scales.shape) != (n, layout.groups):
            raise UserError(f"{path}: quantization scales missing or malformed")
        if not (torch.isfinite(scales).all() and (scales >= 0).all()):
            raise UserError(f"{path}: quantization scales are not finite and non-negative")
        return cls(parts["codes"], parts["wide"], scales, parts["values"], arch, bits, layers,
                   None if bits == 32 else bias_bits, None if lossless == "none" else lossless)


def _maskable(arch) -> torch.Tensor:
    """Positions the file's mask covers: the weight matrices (biases are stored as they are)."""
    return torch.cat(weight_positions(arch))


def _unzip(path, tensors: dict, table, frames=None) -> dict:
    """Undo the zstd stage: a uint8 blob of zstd frames (``frames``: their sizes, from the header's
    ``zstd_frames``; absent: one frame) → the named tensors its table lists. Frames are decoded
    one at a time and each tensor is unshuffled as soon as its bytes are in, so memory holds one
    tensor's planes beside the tensors, never the whole stream."""
    blob = tensors.get("zstd")
    if blob is None or blob.dtype != torch.uint8 or not isinstance(table, list):
        raise UserError(f"{path}: zstd payload missing or malformed")
    frames = [blob.numel()] if frames is None else frames
    if (not isinstance(frames, list) or not all(isinstance(f, int) and not isinstance(f, bool) and f > 0 for f in frames)
            or sum(frames) != blob.numel()):
        raise UserError(f"{path}: zstd frame sizes do not match the payload")
    try:
        import zstandard
    except ImportError:
        raise UserError(f"{path}: written with the zstd stage; install zstandard to read it") from None
    waiting = []  # (name, dtype, shape, bytes) of the tensors still to fill, in stream order
    for entry in table:
        try:
            name, dtype, shape, size = str(entry[0]), _ST_BACK[entry[1]], [int(s) for s in entry[2]], int(entry[3])
        except (KeyError, TypeError, ValueError, IndexError):
            raise UserError(f"{path}: zstd table is malformed") from None
        count = 1
        for s in shape:
            count *= s
        if min(shape, default=0) < 0 or size != count * torch.empty(0, dtype=dtype).element_size():
            raise UserError(f"{path}: zstd table does not match its payload")
        waiting.append((name, dtype, shape, size))
    left = sum(e[3] for e in waiting)  # bytes the frames must still give
    if not 0 <= left <= 1024 * blob.numel() + (64 << 20):  # a zstd bomb, not shuffled weights
        raise UserError(f"{path}: zstd payload is corrupt")
    out, pending, have, at, data = {}, [], 0, 0, blob.numpy()

    def take(size: int) -> np.ndarray:  # the next ``size`` decoded bytes, as one array
        parts, need = [], size
        while need:
            parts.append(pending[0][:need])
            pending[0] = pending[0][need:]
            if not len(pending[0]):
                pending.pop(0)
            need -= len(parts[-1])
        return np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else np.empty(0, np.uint8))

    def drain() -> None:  # every tensor whose bytes are all in
        nonlocal have
        while waiting and have >= waiting[0][3]:
            name, dtype, shape, size = waiting.pop(0)
            out[name] = _unshuffle(take(size), dtype, shape)
            have -= size

    try:
        drain()  # tensors of no bytes before the first frame
        for size in frames:
            frame = data[at : at + size]
            at += size
            expected = zstandard.frame_content_size(frame)
            if not 0 <= expected <= left:  # unknown (-1) or more than the table lists: never allocated
                raise ValueError("frame size")
            chunk = zstandard.ZstdDecompressor().decompress(frame, max_output_size=expected)
            if len(chunk) != expected:
                raise ValueError("frame size")
            left -= expected
            pending.append(np.frombuffer(chunk, np.uint8))
            have += expected
            drain()
    except (zstandard.ZstdError, ValueError):
        raise UserError(f"{path}: zstd payload is corrupt") from None
    if waiting or have or left:
        raise UserError(f"{path}: zstd table does not match its payload")
    return out


STORES[PackedStore.encoding] = PackedStore

# -- the compact store (every layer on its own grid, entropy-coded codes): see compact.py ----------
STORES[CompactStore.encoding] = CompactStore
