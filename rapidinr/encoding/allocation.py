"""Per-group bit allocation for the compact store by rate-distortion (lambda), not by hand.

Every weight matrix and bias (a group, ``rapidinr.codec.compact.groups``) gets 2..16 bits; its step
is the set's largest |w - init| on that grid (``compact.default_steps``). The allocation minimises

    cost(bits) = bits per weight (ideal entropy-coded size of all groups) - lambda * PSNR (dB)

by greedy coordinate descent: from ``start`` bits everywhere, move the one group by one bit
(up or down) that lowers the cost most, until no move does. ``lambda`` is in bits per weight per
dB: a 1 dB loss is accepted when it saves more than ``lambda`` bits per weight (``lambda`` × P / 8
bytes per image, so one lambda means the same trade at every --arch). The PSNR is the set's
mean of the float decode (the fit's own measure); the rate is the constriction coder's code length
under each group's fitted model (``entropy.ideal_bits``), within a few bytes of the real stream.
"""
from __future__ import annotations

import torch

from rapidinr.codec import compact, entropy
from rapidinr.codec.compact import MAX_BITS, MIN_BITS, default_steps, fake_quantize, groups, qmax, quantize_codes
from rapidinr.core import siren
from rapidinr.core.config import Arch
from rapidinr.encoding.fit import images_to_targets, psnr_from_mse


def set_psnr(params: torch.Tensor, arch: Arch, images: torch.Tensor) -> float:
    """Mean PSNR (dB) of the float decode of weights (N, P) against uint8 images (N, C, H, W).

    Decoded a cache-sized micro-batch of images at a time (:func:`rapidinr.core.siren.micro_batch_for`):
    the search calls this hundreds of times, and one whole-set forward pass allocated (and page-faulted)
    gigabytes of activations on every call for a 10k-image set."""
    n, _, h, w = images.shape
    coords = siren.coordinate_grid(h, w, device=params.device)  # (HW, 2)
    step = siren.micro_batch_for(arch, h * w, n, params.device)
    mse = torch.empty(n, device=params.device)  # (N,)
    with torch.no_grad():
        for first in range(0, n, step):
            rows = slice(first, first + step)
            targets = images_to_targets(images[rows]).to(params.device)  # (b, HW, C)
            out = siren.forward(params[rows], arch, coords)  # (b, HW, C)
            mse[rows] = (out - targets).square().mean(dim=(1, 2))
    return float(psnr_from_mse(mse).mean())


def image_step_exponents(params: torch.Tensor, arch: Arch, init: torch.Tensor | None) -> torch.Tensor:
    """Every image's step exponent (N,) int8 (``compact`` module doc) from its own largest weight.

    The hidden weight matrices stay int8 (:func:`device_limits`), so their step is at least the
    set's largest |w - init| over 127: one image with a large weight coarsens every image's grid
    (at 3x20 the set's peak is 1.5x the median image's). Image i's multiplier is the largest, over
    those matrices, of its own peak over the set's, rounded up to the 2 ** (1/STEPS_PER_OCTAVE)
    grid: its codes still fit in int8, on a finer grid. The bit allocation then prices the finer grids."""
    delta = (params.float() - (init if init is not None else 0)).abs()  # (N, P)
    ratio = torch.zeros(params.shape[0])  # (N,)
    for (start, size), high in zip(groups(arch), device_limits(arch)):
        if high <= 8 and size and len(delta):
            peak = delta[:, start : start + size].amax(dim=1)  # (N,)
            if float(peak.max()) > 0:
                ratio = torch.maximum(ratio, peak / peak.max())
    if not any(h <= 8 for h in device_limits(arch)):
        ratio = torch.ones(params.shape[0])
    exps = torch.ceil(compact.STEPS_PER_OCTAVE * torch.log2(ratio) - 1e-9)  # (N,), -inf for an all-zero image
    return exps.clamp(-compact.MAX_EXP, 0).to(torch.int8)


def device_limits(arch: Arch) -> list[int]:
    """The most bits each group may take: 8 for the hidden layers' weight matrices, which hold most
    weights and so stay int8 on the device (the issue's 2-8-bit codes); 16 for the first and last
    layers and every bias (few numbers, and a bias error is multiplied by w0 inside the sine)."""
    last = len(arch.layer_shapes()) - 1
    return [8 if (g % 2 == 0 and 0 < g // 2 < last) else MAX_BITS for g in range(2 * (last + 1))]


ALLOCATION_SAMPLE = 1024  # images the bit search decodes at most (evenly spaced over the set)


def sample_rows(n: int, sample: int) -> torch.Tensor | None:
    """``sample`` row indices evenly spaced over ``n`` (first and last included), or None (all rows)
    when the set is no larger: the search's rate and PSNR are means over images, which a thousand
    images estimate well, so its cost stops growing with the set (each of its ~100 evaluations
    decoded every image: ~2 h of a 50k-image encode on this CPU)."""
    if n <= sample:
        return None
    return torch.linspace(0, n - 1, sample).round().long()  # (sample,), distinct since n > sample


def allocate_bits(images: torch.Tensor, params: torch.Tensor, arch: Arch, init: torch.Tensor | None,
                  lam: float, start: int = 12, low: int = MIN_BITS, high: list[int] | None = None,
                  image_exps: torch.Tensor | None = None, sample: int = ALLOCATION_SAMPLE) -> list[int]:
    """Bits per group (list of len(groups(arch))) minimising bits/weight - lam * PSNR (module doc),
    each within ``low`` and its ``high`` (default :func:`device_limits`); ``image_exps`` (N,) int8:
    every image's step multiplier (:func:`image_step_exponents`). The steps are the whole set's (as
    the store will use them); rate and PSNR are measured on at most ``sample`` images (:func:`sample_rows`)."""
    layout = groups(arch)
    delta = params.float() - (init if init is not None else 0)  # (N, P): the steps come from every image
    set_exps, rows = image_exps, sample_rows(params.shape[0], sample)
    if rows is not None:
        params, images = params[rows], images[rows]
        image_exps = image_exps[rows] if image_exps is not None else None
    n = max(params.shape[0], 1)
    factors = compact.model_factors(image_exps, arch)
    rates: dict[tuple[int, int], float] = {}
    steps_of: dict[tuple[int, ...], list[float]] = {}

    def steps(bits: list[int]) -> list[float]:  # the whole set's steps at these bits
        if tuple(bits) not in steps_of:
            steps_of[tuple(bits)] = default_steps(delta, arch, bits, set_exps)
        return steps_of[tuple(bits)]

    def rate(g: int, b: int) -> float:
        if (g, b) not in rates:
            bits = [b] * len(layout)
            codes = quantize_codes(params, arch, bits, steps(bits), init, image_exps)  # (n, P)
            s, size = layout[g]
            part = codes[:, s : s + size].to(torch.int32).numpy()
            model = entropy.fit_model(part, qmax(b), factors[g])
            rates[g, b] = entropy.ideal_bits(part, model, factors[g]) / n / arch.n_params
        return rates[g, b]

    def cost(bits: list[int]) -> float:
        decoded = fake_quantize(params, arch, bits, steps(bits), init, image_exps)
        return sum(rate(g, b) for g, b in enumerate(bits)) - lam * set_psnr(decoded, arch, images)

    high = device_limits(arch) if high is None else high
    bits = [min(start, h) for h in high]
    current = cost(bits)
    while True:
        moves = [bits[:g] + [b] + bits[g + 1 :] for g in range(len(bits)) for b in (bits[g] - 1, bits[g] + 1)
                 if low <= b <= high[g]]
        scored = [(cost(m), m) for m in moves]
        best_cost, best = min(scored, key=lambda t: t[0])
        if best_cost >= current - 1e-9:
            return bits
        bits, current = best, best_cost
