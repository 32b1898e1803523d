"""Layer-wise quantization of stacked SIREN weights (paper Sec. IV-B).

The first layer's weights spread almost uniformly and the output layer's sit away from zero, so
the paper keeps both in full precision and quantizes only the hidden layers, whose weights are
narrow and centred on zero (Fig. 4). ``layers="all"`` quantizes every layer, for comparison
(COIN's ablation: all layers at 8 bits lose about 10 dB).

Quantization is symmetric and linear, one scale per image and per tensor (each quantized
layer's weight matrix and its bias get their own scale, since SIREN biases are an order of
magnitude larger than hidden weights): ``code = round(w / s)``, ``s = max|w| / (2^(bits-1) - 1)``.
Zero maps to code 0, so pruned weights stay exactly zero. The paper quantizes the hidden layers'
*weights*; ``bias_bits`` can keep their biases at 16 bits or float32, since a bias error inside
``sin(w0 (xW + b))`` is multiplied by w0 = 30 (at 8 bits the biases cause about half the loss).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from rapidinr.core.config import Arch
from rapidinr.core.errors import UserError

BITS = (8, 16)
LAYER_CHOICES = ("hidden", "all")
CODE_DTYPES = {8: torch.int8, 16: torch.int16}


@dataclass(frozen=True)
class QuantConfig:
    """Which layers to quantize and to how many bits; optional quantization-aware fine-tuning."""

    bits: int = 8  # 8 or 16 (the paper: 8)
    layers: str = "hidden"  # "hidden": first and last layers stay float32 (the paper); "all"
    bias_bits: int | None = None  # quantized layers' biases: None = ``bits``; 16 or 32 (float) keeps
    #                               them finer (a SIREN bias error is multiplied by w0 = 30)
    finetune_steps: int = 0  # Adam steps of quantization-aware fine-tuning (straight-through)
    finetune_lr: float = 1e-4  # its peak learning rate, cosine-decayed

    def __post_init__(self) -> None:
        if self.bits not in BITS:
            raise UserError(f"--quant-bits: expected 8 or 16, got {self.bits}")
        if self.layers not in LAYER_CHOICES:
            raise UserError(f"--quant-layers: expected hidden or all, got {self.layers!r}")
        if self.bias_bits not in (None, 8, 16, 32) or (self.bias_bits is not None and self.bias_bits < self.bits):
            raise UserError(f"--quant-bias-bits: expected 8, 16 or 32 and at least --quant-bits, got {self.bias_bits}")
        if self.finetune_steps < 0:
            raise UserError(f"--quant-finetune-steps must be >= 0, got {self.finetune_steps}")
        if not (0 < self.finetune_lr < 1):
            raise UserError(f"--quant-finetune-lr must be in (0, 1), got {self.finetune_lr}")

    def layout(self, arch: Arch) -> "Layout":
        return Layout(arch, self.layers, self.bits, self.bias_bits)

    def to_json(self) -> dict:
        return {"bits": self.bits, "layers": self.layers, "bias_bits": self.bias_bits,
                "finetune_steps": self.finetune_steps, "finetune_lr": self.finetune_lr}


class Layout:
    """Where the quantized and the full-precision parameters sit in the flat (P,) vector.

    quantized (Q,): positions coded at ``bits``, ``group`` (Q,) their scale column; wide (R,):
    biases coded at 16 bits when ``bias_bits`` is 16 and ``bits`` 8, ``wide_group`` (R,); full (F,):
    float32 positions. ``groups``: scales per image (one per quantized weight matrix and bias).
    """

    def __init__(self, arch: Arch, layers: str, bits: int = 8, bias_bits: int | None = None):
        if layers not in LAYER_CHOICES + ("none",):
            raise UserError(f"quantized layers must be hidden, all or none, got {layers!r}")
        bias_bits = bits if bias_bits is None else bias_bits
        shapes = arch.layer_shapes()
        parts = {"quantized": [], "wide": [], "full": []}  # kind → spans of positions (tensors)
        groups = {"quantized": [], "wide": []}  # kind → each span's scale column (tensors)
        offset, group = 0, 0
        for i, (fan_in, fan_out) in enumerate(shapes):
            take = layers == "all" or (layers == "hidden" and 0 < i < len(shapes) - 1)
            for size, is_bias in ((fan_in * fan_out, False), (fan_out, True)):  # weight matrix, then bias
                kind = "full" if not take else (
                    "quantized" if not is_bias or bias_bits == bits else ("wide" if bias_bits == 16 else "full"))
                parts[kind].append(torch.arange(offset, offset + size))
                if kind != "full":
                    groups[kind].append(torch.full((size,), group, dtype=torch.long))
                    group += 1
                offset += size

        def joined(spans: list) -> torch.Tensor:  # int64 tensors throughout: 8 B a position, no lists
            return torch.cat(spans) if spans else torch.zeros(0, dtype=torch.long)

        self.arch, self.layers = arch, layers
        self.bits, self.bias_bits = (32, 32) if layers == "none" else (bits, bias_bits)
        self.quantized = joined(parts["quantized"])  # (Q,)
        self.wide = joined(parts["wide"])  # (R,)
        self.full = joined(parts["full"])  # (F,)
        self.group = joined(groups["quantized"])  # (Q,)
        self.wide_group = joined(groups["wide"])  # (R,)
        self.groups = group
        self.n_params = offset

    def to(self, device) -> "Layout":
        out = object.__new__(Layout)
        out.__dict__.update(self.__dict__)
        for name in ("quantized", "wide", "full", "group", "wide_group"):
            setattr(out, name, getattr(self, name).to(device))
        return out

    def index_tensors(self) -> tuple[torch.Tensor, ...]:
        return self.quantized, self.wide, self.full, self.group, self.wide_group


def _codes(values: torch.Tensor, group: torch.Tensor, scales: torch.Tensor, bits: int) -> torch.Tensor:
    qmax = 2 ** (bits - 1) - 1
    safe = torch.where(scales > 0, scales, torch.ones_like(scales))
    return torch.round(values / safe[:, group]).clamp_(-qmax, qmax).to(CODE_DTYPES[bits])


def quantize(params: torch.Tensor, layout: Layout):
    """(N, P) float → codes (N, Q) int8/int16, wide codes (N, R) int16, scales (N, S) float32,
    full (N, F) float32. Each scale is its tensor's max |w| over 2^(bits-1) - 1."""
    layout = layout.to(params.device)
    n = params.shape[0]
    peak = torch.zeros(n, layout.groups, device=params.device)
    wide_codes = torch.zeros(n, 0, dtype=torch.int16, device=params.device)
    if layout.groups == 0:
        codes = torch.zeros(n, 0, dtype=torch.int8, device=params.device)
        return codes, wide_codes, peak, params[:, layout.full].float()
    values = params[:, layout.quantized].float()  # (N, Q)
    wide = params[:, layout.wide].float()  # (N, R)
    peak.scatter_reduce_(1, layout.group.expand(n, -1), values.abs(), reduce="amax")  # (N, S)
    if layout.wide.numel():
        peak.scatter_reduce_(1, layout.wide_group.expand(n, -1), wide.abs(), reduce="amax")
    scales = peak.clone()  # (N, S)
    scales[:, layout.group] = peak[:, layout.group] / (2 ** (layout.bits - 1) - 1)
    if layout.wide.numel():
        scales[:, layout.wide_group] = peak[:, layout.wide_group] / (2**15 - 1)
        wide_codes = _codes(wide, layout.wide_group, scales, 16)
    return _codes(values, layout.group, scales, layout.bits), wide_codes, scales, params[:, layout.full].float()


def dequantize(codes, wide_codes, scales, full, layout: Layout) -> torch.Tensor:
    """Inverse of :func:`quantize`: float32 (N, P). The one dequantization every path uses."""
    layout = layout.to(codes.device)
    out = torch.empty(codes.shape[0], layout.n_params, device=codes.device)
    out[:, layout.quantized] = codes.float() * scales[:, layout.group]
    out[:, layout.wide] = wide_codes.float() * scales[:, layout.wide_group]
    out[:, layout.full] = full
    return out


def fake_quantize(params: torch.Tensor, layout: Layout) -> torch.Tensor:
    """Quantize and dequantize in one go: the float weights a quantized file will decode with."""
    return dequantize(*quantize(params, layout), layout)
