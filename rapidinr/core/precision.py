"""Arithmetic precision of the fit: the setting a fit runs with, and the emulations that measure
what lower precisions would cost in PSNR on a machine without the hardware for them.

A fit runs in float32, or with ``FitConfig.precision = "tf32"`` on a CUDA GPU's TF32 tensor cores
(matmul operands rounded to 10 mantissa bits, float32 sums). ``benchmarks/precision.py`` measures
on the CPU, by emulation, what TF32 and bfloat16 cost: the numbers behind offering tf32 and not
bfloat16 (SIREN's sine of w0·z, with w0 = 30, turns a bfloat16 rounding error of z into a phase error).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

from rapidinr.core import siren

MANTISSA_BITS = {"tf32": 10, "bf16": 7}  # explicit mantissa bits of the formats emulated (float32: 23)


@contextmanager
def matmul_precision(precision: str, device="cpu"):
    """Run a fit's matmuls in ``precision`` ("fp32" or "tf32", FitConfig.precision) on a CUDA
    ``device``, whatever the process-wide setting, and restore that setting afterwards.

    Through the ``fp32_precision`` API ("tf32" / "ieee"): the legacy ``allow_tf32`` flag raises once
    a process has used the new one, so it is never read or written here. On the CPU nothing is
    touched (it multiplies in float32 either way). The SIREN's first layer stays float32 under
    TF32 whatever this says (:func:`rapidinr.core.siren.first_layer`)."""
    if torch.device(device).type != "cuda":
        yield
        return
    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision
    matmul.fp32_precision = "tf32" if precision == "tf32" else "ieee"
    try:
        yield
    finally:
        matmul.fp32_precision = before


def round_mantissa(x: torch.Tensor, bits: int) -> torch.Tensor:
    """float32 ``x`` rounded to nearest (ties away from zero) with ``bits`` explicit mantissa bits,
    still stored as float32: the value a tensor core reads from a TF32 (10) or bfloat16 (7) operand."""
    if x.dtype != torch.float32 or not 0 < bits < 23:
        raise ValueError("round_mantissa: float32 input and 0 < bits < 23")
    drop = 23 - bits
    raw = x.contiguous().view(torch.int32)
    rounded = (raw + (1 << (drop - 1))) & ~((1 << drop) - 1)  # the sign bit is untouched
    return rounded.view(torch.float32).view_as(x)


@contextmanager
def emulated_matmul_operands(fmt: str):
    """Within the block every ``torch.bmm`` rounds its operands to ``fmt`` ("tf32" or "bf16") and
    sums in float32, as tensor cores do; everything else stays float32. For measurements only:
    it swaps ``torch.bmm`` process-wide while the block runs. The fit's kernel multiplies with
    bmm; decoding (baddbmm) stays exact, so a PSNR measured after the block is the real one."""
    bits = MANTISSA_BITS[fmt]
    exact = torch.bmm

    def rounded_bmm(a, b, *, out=None):
        return exact(round_mantissa(a, bits), round_mantissa(b, bits), out=out)

    torch.bmm = rounded_bmm
    try:
        yield
    finally:
        torch.bmm = exact


@contextmanager
def bfloat16_loss_and_grad():
    """Within the block the fit's loss and gradient are computed in bfloat16 end to end (weights,
    activations, sines); Adam and the weights it keeps stay float32. What a whole-network bf16
    kernel would give; ``benchmarks/gpu_encode.py`` times it on a GPU."""
    exact = siren.loss_and_grad

    def in_bfloat16(params, arch, coords, target, micro_batch=None):
        mse, grad = exact(params.bfloat16(), arch, coords.bfloat16(), target.bfloat16(), micro_batch)
        return mse.float(), grad.float()

    siren.loss_and_grad = in_bfloat16
    try:
        yield
    finally:
        siren.loss_and_grad = exact
