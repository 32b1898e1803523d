"""Pruning masks for stacked SIREN weights: L1-unstructured masks and PSNR-driven dynamic ratios.

The paper (Sec. IV-A) prunes in two rounds after the full-precision fit:
- round 2, *iterative*: L1-unstructured pruning of a fixed share (20%) of each image's weights,
  then retraining at a lower rate with the mask applied (skipped for small images such as CIFAR);
- round 3, *dynamic*: each image's pruning ratio comes from its PSNR through a piecewise-linear
  schedule (Eq. 2 for CIFAR-10, Eq. 3/4 for 102flowers and Mini-ImageNet), then retraining.

A ratio is the share of an image's *weights* (the matrices, not the biases) that is zero.
``scope="layer"`` prunes every weight matrix by that ratio on its own, as
``torch.nn.utils.prune.l1_unstructured`` does module by module; ``scope="image"`` ranks all of
an image's weights together. The dynamic ratio is the *total* ratio: weights pruned in round 2
stay pruned, and round 3 only adds to them (Eq. 3's floor of 0.2 equals round 2's ratio).

Masks are float (N, P) tensors of 0/1 over all P parameters; biases are always 1.
:func:`pack_mask`/:func:`unpack_mask` give the file's mask coding: a bitmask or a list of the
zero positions, whichever is smaller.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from rapidinr.core.config import Arch
from rapidinr.core.errors import UserError


@dataclass(frozen=True)
class Schedule:
    """A piecewise-linear map from PSNR (dB) to a pruning ratio, constant outside its knots.

    ``knots`` are (psnr, ratio) pairs with strictly increasing PSNR and ratios in [0, 1).
    """

    knots: tuple[tuple[float, float], ...]
    name: str = "custom"

    def __post_init__(self) -> None:
        knots = tuple((float(p), float(r)) for p, r in self.knots)
        object.__setattr__(self, "knots", knots)
        if not knots:
            raise UserError("--dynamic-prune: a schedule needs at least one PSNR:RATIO knot")
        for psnr, ratio in knots:
            if not (math.isfinite(psnr) and 0 < psnr < 200):
                raise UserError(f"--dynamic-prune: PSNR {psnr} is not in (0, 200) dB")
            check_ratio(ratio, "--dynamic-prune")
        if any(b[0] <= a[0] for a, b in zip(knots, knots[1:])):
            raise UserError("--dynamic-prune: a schedule is piecewise-linear over PSNR, so its knots' "
                            f"PSNRs must strictly increase; got {format_schedule(knots)}")

    def ratio(self, psnr: torch.Tensor) -> torch.Tensor:
        """Pruning ratio of every image from its PSNR (N,) → (N,) float."""
        psnr = torch.as_tensor(psnr, dtype=torch.float64).nan_to_num(nan=-math.inf)
        xs = torch.tensor([k[0] for k in self.knots], dtype=torch.float64)
        ys = torch.tensor([k[1] for k in self.knots], dtype=torch.float64)
        out = torch.full_like(psnr, ys[0].item())
        for i in range(len(self.knots) - 1):
            inside = (psnr >= xs[i]) & (psnr <= xs[i + 1])
            t = (psnr - xs[i]) / (xs[i + 1] - xs[i])
            out = torch.where(inside, ys[i] + t * (ys[i + 1] - ys[i]), out)
        out = torch.where(psnr > xs[-1], ys[-1], out)
        return out.float()

    def to_json(self) -> dict:
        return {"name": self.name, "knots": [list(k) for k in self.knots]}


def format_schedule(knots) -> str:
    return ",".join(f"{p:g}:{r:g}" for p, r in knots)


def check_ratio(ratio: float, option: str = "--prune-l1") -> float:
    """A pruning ratio must be a number in [0, 1) (1 would leave no weights at all)."""
    if not (isinstance(ratio, (int, float)) and math.isfinite(ratio) and 0 <= ratio < 1):
        raise UserError(f"{option}: a pruning ratio must be in [0, 1), got {ratio}")
    return float(ratio)


# Paper Eq. 2 (CIFAR-10): 0 below 30 dB, 0.05·PSNR − 1.5 on [30, 35], 0.25 above.
# Eq. 3 (102flowers) and Eq. 4 (Mini-ImageNet) are the same: 0.2 below 35 dB, 0.04·PSNR − 1.2
# on [35, 40], 0.4 above.
PRESETS = {
    "cifar10": Schedule(((30.0, 0.0), (35.0, 0.25)), "cifar10"),
    "flowers102": Schedule(((35.0, 0.2), (40.0, 0.4)), "flowers102"),
    "mini-imagenet": Schedule(((35.0, 0.2), (40.0, 0.4)), "mini-imagenet"),
}


def parse_schedule(text: str) -> Schedule:
    """A preset name (cifar10, flowers102, mini-imagenet) or knots ``PSNR:RATIO,PSNR:RATIO,...``."""
    text = str(text).strip()
    if text in PRESETS:
        return PRESETS[text]
    knots = []
    for part in text.split(","):
        pieces = part.split(":")
        try:
            if len(pieces) != 2:
                raise ValueError
            knots.append((float(pieces[0]), float(pieces[1])))
        except ValueError:
            raise UserError(f"--dynamic-prune: expected a preset ({', '.join(PRESETS)}) or knots "
                            f"PSNR:RATIO,PSNR:RATIO (e.g. 30:0,35:0.25), got {text!r}") from None
    return Schedule(tuple(knots))


@dataclass(frozen=True)
class PruneConfig:
    """Rounds 2 and 3 of the paper's pipeline (Sec. IV-A, VI-A). A round with nothing to do is skipped."""

    l1_ratio: float = 0.0  # round 2: share of each image's weights pruned (paper 0.2; 0 skips it)
    l1_min_side: int = 0  # round 2 runs only for images at least this many pixels a side
    #                       (the paper skips it for 32×32 CIFAR-10: set e.g. 64)
    schedule: Schedule | None = None  # round 3: PSNR → total ratio (None skips it)
    scope: str = "image"  # "image": all of an image's weights ranked together; "layer": each matrix alone
    retrain_steps: int = 10000  # Adam steps after each pruning round (paper 10000)
    retrain_lr: float = 2e-4  # peak rate of the retraining rounds (paper 2e-4), cosine-decayed

    def __post_init__(self) -> None:
        check_ratio(self.l1_ratio, "--prune-l1")
        if self.scope not in ("layer", "image"):
            raise UserError(f"--prune-scope: expected layer or image, got {self.scope!r}")
        if self.retrain_steps < 1:
            raise UserError(f"--retrain-steps must be >= 1, got {self.retrain_steps}")
        if not (0 < self.retrain_lr < 1):
            raise UserError(f"--retrain-lr must be in (0, 1), got {self.retrain_lr}")
        if self.l1_min_side < 0:
            raise UserError(f"--prune-l1-min-side must be >= 0, got {self.l1_min_side}")

    def runs_l1(self, height: int, width: int) -> bool:
        return self.l1_ratio > 0 and min(height, width) >= self.l1_min_side

    @property
    def active(self) -> bool:
        return self.l1_ratio > 0 or self.schedule is not None

    def to_json(self) -> dict:
        return {"l1_ratio": self.l1_ratio, "l1_min_side": self.l1_min_side, "scope": self.scope,
                "schedule": self.schedule.to_json() if self.schedule else None,
                "retrain_steps": self.retrain_steps, "retrain_lr": self.retrain_lr}


def weight_positions(arch: Arch) -> list[torch.Tensor]:
    """Flat positions (into P) of every layer's weight matrix, first layer to output layer."""
    out, offset = [], 0
    for fan_in, fan_out in arch.layer_shapes():
        out.append(torch.arange(offset, offset + fan_in * fan_out))
        offset += fan_in * fan_out + fan_out
    return out


def l1_mask(params: torch.Tensor, arch: Arch, ratio, scope: str = "image",
            mask: torch.Tensor | None = None) -> torch.Tensor:
    """0/1 mask (N, P) zeroing the smallest-magnitude weights of each image.

    ratio: a float or per-image (N,) total share of weights to prune; ``mask`` (N, P): weights
    already pruned, which stay pruned (the new mask never revives one). Biases are kept.
    """
    n = params.shape[0]
    ratio = torch.as_tensor(ratio, dtype=torch.float64).expand(n).cpu()
    out = torch.ones_like(params) if mask is None else mask.clone().to(params)
    groups = weight_positions(arch) if scope == "layer" else [torch.cat(weight_positions(arch))]
    for positions in groups:
        positions = positions.to(params.device)
        # Rows a chunk at a time: the sort's order and rank cost 16 bytes a weight, which for a
        # whole 100k-image set would be a second and third copy of it; each row is ranked alone.
        step = max(1, L1_CHUNK_ELEMENTS // positions.numel())
        for first in range(0, n, step):
            rows = slice(first, min(first + step, n))
            _prune_rows(params[rows], out[rows], positions, ratio[rows])
    return out


L1_CHUNK_ELEMENTS = 1 << 20  # weights ranked at once by l1_mask (~20 MB of sort temporaries)


def _prune_rows(params: torch.Tensor, out: torch.Tensor, positions: torch.Tensor, ratio: torch.Tensor) -> None:
    """l1_mask for a block of rows, written into ``out`` (b, P) in place."""
    b = params.shape[0]
    mags = params[:, positions].abs()  # (b, G)
    mags = mags.masked_fill(out[:, positions] == 0, -1.0)  # already pruned sort first
    # Per image: prune the k smallest, k = round(ratio * G); rounding as torch's prune does.
    k = (ratio * positions.numel()).round().long().to(params.device)  # (b,)
    order = mags.argsort(dim=1, stable=True)  # (b, G) ascending
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(positions.numel(), device=params.device).expand(b, -1))
    pruned = (rank < k[:, None]) | (out[:, positions] == 0)  # (b, G)
    out[:, positions] = (~pruned).to(out.dtype)


COUNT_BLOCK = 1 << 16  # elements of a mask counted at once by row_counts


def row_counts(mask: torch.Tensor) -> torch.Tensor:
    """True entries of each row of a bool (N, K) mask → int64 (N,), a block of rows at a time:
    ``mask.sum(dim=1)`` (and ``count_nonzero``) first turn the whole mask into int64, 8 B an entry."""
    n, k = mask.shape
    out = torch.empty(n, dtype=torch.int64)
    step = max(1, COUNT_BLOCK // max(k, 1))
    for first in range(0, n, step):
        out[first : first + step] = mask[first : first + step].sum(dim=1)
    return out


def weight_sparsity(mask_or_params: torch.Tensor, arch: Arch) -> torch.Tensor:
    """Share of each image's weights (not biases) that is zero. (N,)"""
    positions = torch.cat(weight_positions(arch)).to(mask_or_params.device)
    return (mask_or_params[:, positions] == 0).float().mean(dim=1)


# -- the file's mask coding -----------------------------------------------------------------------
def pack_mask(nonzero: torch.Tensor) -> tuple[str, dict[str, torch.Tensor]]:
    """Code a bool (N, P) nonzero-pattern as compactly as the simple choices allow
    (:func:`pack_mask_blocks` of the pattern as one block)."""
    return pack_mask_blocks(lambda: [nonzero], nonzero.shape[1])


def pack_mask_blocks(blocks, p: int) -> tuple[str, dict[str, torch.Tensor]]:
    """Code the nonzero-pattern of a set given as row blocks as compactly as the simple choices allow.

    ``blocks()``: a fresh iterator over bool (n_b, P) blocks of rows, in order (the set's chunks,
    read from disk one at a time: the pattern of the whole set is never held); it is called once
    per pass (two or three). "none": nothing is zero (0 bytes); "bitmask": N·ceil(P/8) bytes;
    "zero-index": the zero positions of each image as int16 (P < 32768) plus an int16 count per
    image; "riceK": the gaps between consecutive zeros of the whole set, Golomb-Rice coded with
    parameter K (a near-optimal code for the geometric gaps of a random mask: about 40% under the
    bitmask at 15% sparsity). The smallest wins; the same bytes whatever the blocks' sizes.
    """
    counts, rice, gaps = [], _RiceCosts(), _ZeroGaps(p)
    for block in blocks():  # pass 1: zeros per image, and what each Rice parameter would cost
        counts.append(p - row_counts(block))
        for piece in gaps.feed(block):
            rice.add(piece)
    zeros = torch.cat(counts) if counts else torch.zeros(0, dtype=torch.int64)  # (N,)
    n, total = zeros.numel(), int(zeros.sum())
    if total == 0:
        return "none", {}
    index_bytes = 2 * total + 2 * n if p < 32768 else None
    bitmask_bytes = n * ((p + 7) // 8)
    k = rice.best()
    if rice.bytes(k) < min(bitmask_bytes, index_bytes if index_bytes is not None else bitmask_bytes):
        unary, remainders = _rice_encode_blocks(blocks, p, k)
        return f"rice{k}", {"mask_unary": unary, "mask_remainders": remainders}
    if index_bytes is not None and index_bytes < bitmask_bytes:
        positions = [(~block).nonzero()[:, 1].to(torch.int16) for block in blocks()]  # image by image, ascending
        return "zero-index", {"mask_index": torch.cat(positions), "mask_counts": zeros.to(torch.int16)}
    return "bitmask", {"mask_bits": torch.cat([_bitmask(block) for block in blocks()])}


def _bitmask(nonzero: torch.Tensor) -> torch.Tensor:
    """bool (n, P) → uint8 (n, ceil(P/8)): bit i of byte j is position 8j + i."""
    n, p = nonzero.shape
    padded = torch.zeros(n, (p + 7) // 8 * 8, dtype=torch.uint8)
    padded[:, :p] = nonzero.cpu().to(torch.uint8)
    weights = (2 ** torch.arange(8, dtype=torch.uint8))
    return (padded.view(n, -1, 8) * weights).sum(dim=2, dtype=torch.uint8)


def unpack_mask(coding: str, tensors: dict[str, torch.Tensor], n: int, p: int, path="") -> torch.Tensor:
    """Inverse of :func:`pack_mask` → bool (N, P); a malformed coding is a clear error."""
    if coding == "none":
        return torch.ones(n, p, dtype=torch.bool)
    if coding == "bitmask":
        bits = tensors.get("mask_bits")
        if bits is None or bits.dtype != torch.uint8 or tuple(bits.shape) != (n, (p + 7) // 8):
            raise UserError(f"{path}: pruning bitmask missing or malformed")
        unpacked = (bits[:, :, None] >> torch.arange(8, dtype=torch.uint8)) & 1  # (N, ceil(P/8), 8)
        return unpacked.reshape(n, -1)[:, :p].bool()
    if coding == "zero-index":
        index, counts = tensors.get("mask_index"), tensors.get("mask_counts")
        if (index is None or counts is None or index.dtype != torch.int16 or counts.dtype != torch.int16
                or index.dim() != 1 or tuple(counts.shape) != (n,)):
            raise UserError(f"{path}: pruning index missing or malformed")
        counts = counts.to(torch.int64)
        positions = index.to(torch.int64)
        if (int(counts.sum()) != positions.numel() or (n and int(counts.min()) < 0)
                or (positions.numel() and (int(positions.min()) < 0 or int(positions.max()) >= p))):
            raise UserError(f"{path}: pruning index does not match the weights")
        rows = torch.repeat_interleave(torch.arange(n), counts)
        out = torch.ones(n, p, dtype=torch.bool)
        out[rows, positions] = False
        return out
    if isinstance(coding, str) and coding.startswith("rice") and coding[4:].isdigit() and int(coding[4:]) < 32:
        return _rice_decode(int(coding[4:]), tensors.get("mask_unary"), tensors.get("mask_remainders"), n, p, path)
    raise UserError(f"{path}: unknown mask coding {coding!r}")


RICE_ENCODE_BLOCK = 1 << 20  # mask entries whose zeros are coded at once (a few MB of int64 gaps)
RICE_KS = 24  # Rice parameters tried: 0..23


class _ZeroGaps:
    """The gaps (ones before each zero) of a flattened pattern fed as row blocks, each block a
    sub-block of rows at a time: int64 (z,) arrays whose concatenation is the whole set's gaps,
    never held whole (8 B a zero)."""

    def __init__(self, p: int):
        self.p, self.row, self.last = p, 0, -1  # width, rows seen, the previous zero's flat position

    def feed(self, nonzero: torch.Tensor):
        step = max(1, RICE_ENCODE_BLOCK // max(self.p, 1))
        for first in range(0, nonzero.shape[0], step):
            gaps = np.flatnonzero(~nonzero[first : first + step].cpu().numpy().reshape(-1))  # (z,) zero positions
            if len(gaps):
                gaps += (self.row + first) * self.p
                end = int(gaps[-1])
                gaps[1:] -= gaps[:-1] + 1  # in place: the ones before each zero
                gaps[0] -= self.last + 1
                self.last = end
                yield gaps
        self.row += nonzero.shape[0]


class _BitStream:
    """0/1 uint8 pieces → packed bytes (most significant bit first), packed as they come."""

    def __init__(self):
        self.bytes, self.pending = [], np.zeros(0, dtype=np.uint8)

    def add(self, bits: np.ndarray) -> None:
        bits = np.concatenate([self.pending, bits]) if len(self.pending) else bits
        whole = len(bits) // 8 * 8
        self.bytes.append(np.packbits(bits[:whole]))
        self.pending = bits[whole:]

    def finish(self, pad: int) -> torch.Tensor:
        tail = np.concatenate([self.pending, np.full(-len(self.pending) % 8, pad, dtype=np.uint8)])
        return torch.from_numpy(np.concatenate([*self.bytes, np.packbits(tail)]))


class _RiceCosts:
    """What the Golomb-Rice code of the gaps fed so far costs at every parameter K in 0..RICE_KS-1."""

    def __init__(self):
        self.quotients, self.count = np.zeros(RICE_KS, dtype=np.int64), 0  # sum of gap >> K; gaps

    def add(self, gaps: np.ndarray) -> None:
        self.quotients += [int((gaps >> k).sum()) for k in range(RICE_KS)]
        self.count += len(gaps)

    def best(self) -> int:
        """The K of the fewest bits: each code is its quotient in unary, a stop bit and K bits."""
        return int(np.argmin(self.quotients + self.count * (1 + np.arange(RICE_KS))))

    def bytes(self, k: int) -> int:
        """The two streams' bytes at ``k``, each padded to a byte."""
        return -(-(int(self.quotients[k]) + self.count) // 8) + -(-(self.count * k) // 8)


def _rice_encode(nonzero: torch.Tensor) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Golomb-Rice code of the gaps between zeros of a whole (N, P) pattern: (K, unary, remainders)
    (a mask that :func:`pack_mask` may code otherwise; for tests and the hostile-file fixtures)."""
    p, rice = nonzero.shape[1], _RiceCosts()
    for gaps in _ZeroGaps(p).feed(nonzero):
        rice.add(gaps)
    k = rice.best()
    return (k, *_rice_encode_blocks(lambda: [nonzero], p, k))


def _rice_encode_blocks(blocks, p: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The gaps of the pattern ``blocks()`` gives (see :func:`pack_mask_blocks`), Golomb-Rice coded
    with parameter ``k`` in two streams: the quotients in unary (q ones, then a zero; padded with
    ones) and the K-bit remainders. A block of gaps at a time, so memory stays at a few MB beside
    the two streams whatever the set's size."""
    unary, remainders = _BitStream(), _BitStream()
    gaps_of = _ZeroGaps(p)
    for block in blocks():
        for gaps in gaps_of.feed(block):
            ends = gaps >> k  # (z,) quotients, then (in place) each code's closing zero in this block's unary bits
            ends += 1
            np.cumsum(ends, out=ends)
            bits = np.ones(int(ends[-1]), dtype=np.uint8)
            bits[ends - 1] = 0
            del ends
            unary.add(bits)
            bits = np.empty((len(gaps), k), dtype=np.uint8)  # (z, k) remainder bits, most significant first
            for j in range(k):
                bits[:, j] = (gaps >> (k - 1 - j)) & 1
            remainders.add(bits.reshape(-1))
    return unary.finish(pad=1), remainders.finish(pad=0)


RICE_PIECE_BYTES = 1 << 15  # unary bytes decoded at once: at most 262,144 codes (a few MB of work)


def _rice_decode(k: int, unary, remainders, n: int, p: int, path) -> torch.Tensor:
    """Inverse of :func:`_rice_encode`, in bounded pieces: the streams' lengths are checked against
    what a mask of n·p bits can need *before* anything is allocated, then the unary stream is
    decoded a piece at a time, so memory stays at the (N, P) mask plus a few MB."""
    if (unary is None or remainders is None or unary.dtype != torch.uint8 or remainders.dtype != torch.uint8
            or unary.dim() != 1 or remainders.dim() != 1):
        raise UserError(f"{path}: pruning mask (rice) missing or malformed")
    total = n * p
    # each of at most n·p codes is a zero bit plus its quotient's ones, and the gaps sum below n·p
    if unary.numel() * 8 > total + (total >> k) + 8 or remainders.numel() * 8 > total * k + 8:
        raise UserError(f"{path}: pruning mask (rice) is longer than {n} images of {p} weights can need")
    stream, rest = unary.numpy(), remainders.numpy()
    out = np.ones(total, dtype=bool)
    last_end, last_zero, count = -1, -1, 0  # unary bit of the last code's end, mask position, codes
    for first in range(0, len(stream), RICE_PIECE_BYTES):
        ends = np.flatnonzero(np.unpackbits(stream[first : first + RICE_PIECE_BYTES]) == 0) + 8 * first
        if not len(ends):
            continue
        quotients = np.diff(ends, prepend=last_end) - 1  # (m,) ones before each code's zero
        m = len(ends)
        need = ((count + m) * k + 7) // 8
        if count + m > total or need > len(rest):
            raise UserError(f"{path}: pruning mask (rice) does not match its remainders")
        gaps = quotients.astype(np.int64) << k
        if k:
            skip = count * k
            bits = np.unpackbits(rest[skip // 8 : need])[skip % 8 : skip % 8 + m * k].reshape(m, k)
            for j in range(k):  # most significant remainder bit first
                gaps |= bits[:, j].astype(np.int64) << (k - 1 - j)
        zeros = last_zero + np.cumsum(gaps + 1)
        if zeros[-1] >= total:
            raise UserError(f"{path}: pruning mask (rice) does not match the weights")
        out[zeros] = False
        last_end, last_zero, count = int(ends[-1]), int(zeros[-1]), count + m
    if len(rest) != (count * k + 7) // 8 or len(stream) * 8 - 1 - last_end >= 8:
        raise UserError(f"{path}: pruning mask (rice) does not match its remainders")
    return torch.from_numpy(out).reshape(n, p)
