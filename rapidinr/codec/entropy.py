"""Entropy coding of quantized weight codes: one parametric model per group, one ANS stream per set.

The integer codes of a fitted SIREN are close to Gaussian or Laplacian around zero; a dictionary
coder (zstd) finds little to exploit in them, a probability model does. Each group of codes (one
weight matrix or one bias of every image in the set) gets a discretized Gaussian or Laplace
(whichever codes it in fewer bits) on the code range ``[-qmax, qmax]`` with a mean and a scale
fitted to the set's codes; the three numbers per group go in the file header. Where the store
gives every image its own step (``compact.py``), image i's codes in a group are ``factors[i]``
times wider: its model is the group's with mean and scale times ``factors[i]`` (no further side
information). All groups are coded into one stream of uint32 words by constriction's ANS coder
(``constriction.stream.stack``, https://bamler-lab.github.io/constriction/), which also gives the
exact ideal code length used by the rate-distortion search (:func:`ideal_bits`).

Decoding happens once at load; the device holds the integer codes. A stream that does not decode
to exactly the stored number of symbols, leaves words over, or whose codes do not hash to the
stored digest is refused with one :class:`~rapidinr.core.errors.UserError`, never turned into weights.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import constriction
import numpy as np
import torch

from rapidinr.core.errors import UserError

FAMILIES = ("gaussian", "laplace")
MIN_SCALE = 0.05  # in code units: a near-constant group still gets a proper distribution
MAX_SCALE = 2.0**24  # the widest 16-bit group (2**15) over the smallest per-image factor (2**-8), with room
DIGEST_CHARS = 16  # hex characters of sha256 kept to check the decoded codes


@dataclass(frozen=True)
class GroupModel:
    """A discretized ``family`` distribution on the integers ``[-qmax, qmax]``."""

    family: str
    mean: float
    scale: float
    qmax: int

    def to_json(self) -> list:
        return [self.family, self.mean, self.scale, self.qmax]

    @classmethod
    def from_json(cls, path, entry) -> GroupModel:
        try:
            family, mean, scale, qmax = entry
            mean, scale, qmax = float(mean), float(scale), int(qmax)
        except (TypeError, ValueError, OverflowError):
            raise UserError(f"{path}: entropy model entry is malformed") from None
        if (family not in FAMILIES or not np.isfinite(mean) or not np.isfinite(scale) or scale < MIN_SCALE / 2
                or scale > MAX_SCALE or not 1 <= qmax <= 2**15 - 1 or abs(mean) > qmax):
            raise UserError(f"{path}: entropy model entry is out of range")
        return cls(family, mean, scale, qmax)

    def constriction_model(self, factors: np.ndarray | None = None):
        """The coder's model; with ``factors`` (one per symbol), a model family and its per-symbol
        (means, scales) to pass with the symbols."""
        kind = (constriction.stream.model.QuantizedGaussian if self.family == "gaussian"
                else constriction.stream.model.QuantizedLaplace)
        if factors is None:
            return (kind(-self.qmax, self.qmax, self.mean, self.scale),)
        means, scales = symbol_parameters(self.mean, self.scale, factors)
        return kind(-self.qmax, self.qmax), means, scales


def symbol_parameters(mean: float, scale: float, factors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-symbol (mean, scale) (float64, shape of ``factors``) of a group's model under per-symbol
    factors; the scale floored at MIN_SCALE as a fitted scale is. Encoder and decoder call this alike."""
    factors = np.asarray(factors, dtype=np.float64)
    return mean * factors, np.maximum(scale * factors, MIN_SCALE)


def _round6(x: float) -> float:
    """A float the JSON header holds exactly, so encoder and decoder use the same model."""
    return float(f"{x:.6g}")


def _cdf(x: np.ndarray, family: str, mean, scale) -> np.ndarray:
    z = torch.from_numpy((x - mean) / scale)
    if family == "gaussian":
        return torch.special.ndtr(z).numpy()
    return torch.where(z < 0, 0.5 * torch.exp(z), 1 - 0.5 * torch.exp(-z)).numpy()


def _ideal_bits_of(codes: np.ndarray, family: str, mean: float, scale: float, qmax: int,
                   factors: np.ndarray | None = None) -> float:
    """-sum log2 p(code) under the discretized model, computed in closed form (no coder); with
    ``factors`` (one per code), code k's model has mean and scale times factors[k]."""
    if factors is None:
        values, counts = np.unique(codes, return_counts=True)
        values, means, scales = values.astype(np.float64), mean, scale
    else:
        values, counts = codes.astype(np.float64), 1
        means, scales = symbol_parameters(mean, scale, factors)
    upper = np.where(values >= qmax, 1.0, _cdf(values + 0.5, family, means, scales))
    lower = np.where(values <= -qmax, 0.0, _cdf(values - 0.5, family, means, scales))
    p = np.clip(upper - lower, 2.0**-24, 1.0)  # constriction also keeps every symbol's mass above zero
    return float(-(counts * np.log2(p)).sum())


def fit_model(codes: np.ndarray, qmax: int, factors: np.ndarray | None = None) -> GroupModel:
    """The family, mean and scale that code ``codes`` (any shape, integers in [-qmax, qmax]) in the
    fewest bits (moments as a start; Gaussian: std, Laplace: mean absolute deviation). ``factors``
    (one per code, positive): code k's model has mean and scale times factors[k]; the moments are
    then those of codes / factors."""
    codes = np.asarray(codes, dtype=np.int64).ravel()
    factors = None if factors is None else np.asarray(factors, dtype=np.float64).ravel()
    if codes.size == 0:
        return GroupModel("gaussian", 0.0, 1.0, qmax)
    unit = codes if factors is None else codes / factors  # the codes on the group's common scale
    best = None
    for family in FAMILIES:
        centre = float(unit.mean()) if family == "gaussian" else float(np.median(unit))
        spread = float(unit.std()) if family == "gaussian" else float(np.abs(unit - centre).mean())
        for factor in (0.85, 1.0, 1.2):  # discretization widens the best continuous scale a little
            mean = _round6(min(max(centre, -qmax), qmax))
            scale = _round6(min(max(spread * factor, MIN_SCALE), MAX_SCALE))
            bits = _ideal_bits_of(codes, family, mean, scale, qmax, factors)
            if best is None or bits < best[0]:
                best = (bits, GroupModel(family, mean, scale, qmax))
    return best[1]


def ideal_bits(codes: np.ndarray, model: GroupModel, factors: np.ndarray | None = None) -> float:
    """Bits the group costs under ``model`` (the stream's size within a few words); ``factors``
    as for :func:`fit_model`."""
    return _ideal_bits_of(np.asarray(codes, dtype=np.int64).ravel(), model.family, model.mean, model.scale,
                          model.qmax, None if factors is None else np.asarray(factors, dtype=np.float64).ravel())


def digest(groups: list[np.ndarray]) -> str:
    """Short sha256 of the codes, group after group, as int32: checks a decoded stream."""
    h = hashlib.sha256()
    for g in groups:
        h.update(np.ascontiguousarray(g, dtype=np.int32).tobytes())
    return h.hexdigest()[:DIGEST_CHARS]


def encode(groups: list[np.ndarray], models: list[GroupModel], factors: list[np.ndarray] | None = None
           ) -> np.ndarray:
    """Every group's codes (1-D int arrays, each within its model's range) → one uint32 stream.
    ``factors``: for every group, one factor per code (:func:`fit_model`), or None (all 1)."""
    factors = factors or [None] * len(groups)
    coder = constriction.stream.stack.AnsCoder()
    for codes, model, f in zip(reversed(groups), reversed(models), reversed(factors)):  # a stack: last in, first out
        if codes.size:
            coder.encode_reverse(np.ascontiguousarray(codes, dtype=np.int32), *model.constriction_model(f))
    return coder.get_compressed().astype(np.uint32)


def decode(path, words: np.ndarray, models: list[GroupModel], sizes: list[int], expected_digest: str,
           factors: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """Inverse of :func:`encode`: the stream → one int32 array per group of ``sizes[i]`` codes
    (``factors`` as given to :func:`encode`, each of ``sizes[i]`` values).

    Refuses (UserError naming ``path``) a stream that runs dry, has words left over or whose codes
    do not match ``expected_digest``."""
    factors = factors or [None] * len(sizes)
    try:
        coder = constriction.stream.stack.AnsCoder(np.ascontiguousarray(words, dtype=np.uint32))
        out = []
        for size, model, f in zip(sizes, models, factors):
            if not size:
                out.append(np.zeros(0, dtype=np.int32))
                continue
            model_args = model.constriction_model(f)
            out.append(np.asarray(coder.decode(*model_args) if f is not None else coder.decode(*model_args, int(size)),
                                  dtype=np.int32))
        leftover = not coder.is_empty()
    except (ValueError, RuntimeError, AssertionError, OverflowError, TypeError):
        raise UserError(f"{path}: entropy-coded weights are corrupt (the stream does not decode)") from None
    if leftover or digest(out) != expected_digest:
        raise UserError(f"{path}: entropy-coded weights are corrupt (the stream does not decode to the "
                        "stored codes)")
    return out
