"""Batched fitting: every image of a chunk fitted at once by one Adam over stacked weights.

Adam is elementwise, so one Adam over the (N, P) parameter matrix is exactly N independent
Adams, one per image (tested against a per-image ``nn.Module`` loop). The optimizer is written
out here rather than taken from ``torch.optim`` because its state must shrink with the batch:
images that reach the target PSNR, or diverge, leave the active batch and stop costing compute.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from rapidinr.core import siren
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.precision import matmul_precision


@dataclass
class FitResult:
    params: torch.Tensor  # (N, P) float32: each image's best weights
    train_psnr: torch.Tensor  # (N,) best PSNR seen while fitting (float output, not 8-bit rounded)
    refits: int  # images refitted after divergence
    image_steps: int  # Adam steps actually run, summed over images (early stop makes it smaller)


def psnr_from_mse(mse: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of an MSE measured on the network's [-1, 1] scale (peak-to-peak 2)."""
    return 10 * torch.log10(4.0 / mse.clamp_min(1e-20))


def cosine_lr(cfg: FitConfig, step: int, lr: float) -> float:
    """Cosine decay from ``lr`` at step 0 to ``lr * cfg.lr_final_ratio`` at the last step."""
    final = lr * cfg.lr_final_ratio
    return final + 0.5 * (lr - final) * (1 + math.cos(math.pi * step / max(cfg.steps - 1, 1)))


def images_to_targets(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) → float targets (N, H*W, C) on [-1, 1], the network's output scale."""
    n, c, h, w = images.shape
    return (images.float() / 127.5 - 1).permute(0, 2, 3, 1).reshape(n, h * w, c)  # (N, HW, C)


COLLAPSE_MIN_STEPS = 100  # shorter fits may still be on their way up; never call them collapsed
COLLAPSE_MARGIN_DB = 0.5  # a fit must beat a flat image of its mean colour by this much


def collapsed(targets: torch.Tensor, best_psnr: torch.Tensor, cfg: FitConfig) -> torch.Tensor:
    """bool (n,): fits no better than a flat image of their mean colour. targets (n, HW, C).

    Too high a learning rate rarely yields NaN: the sines saturate and the SIREN settles on the
    constant that minimises the MSE, the image's mean colour, without ever "dropping" from a
    good PSNR. Such a fit is refitted like a diverged one. Near-flat images (whose flat PSNR is
    already 40 dB) and images that reached the target are never flagged.
    """
    if cfg.steps < COLLAPSE_MIN_STEPS:
        return torch.zeros_like(best_psnr, dtype=torch.bool)
    flat = psnr_from_mse(targets.var(dim=1, unbiased=False).mean(dim=1))  # (n,) PSNR of the mean colour
    out = (best_psnr < flat + COLLAPSE_MARGIN_DB) & (flat < 40)
    if cfg.target_psnr:
        out &= best_psnr < cfg.target_psnr
    return out


def chunk_size_for(arch: Arch, pixels: int, cfg: FitConfig) -> int:
    """Images per chunk so that activations, cosines and gradients fit ``cfg.memory_budget_mb``."""
    if cfg.chunk_size is not None:
        return cfg.chunk_size
    floats_per_image = pixels * (4 * arch.hidden * arch.layers + 4 * arch.channels) + 8 * arch.n_params
    return max(1, int(cfg.memory_budget_mb * 2**20 / (4 * floats_per_image)))


def _fit_chunk(targets, coords, params, arch, cfg, lr, mask, progress, on_check=None):
    """Fit one chunk. targets (n, HW, C); params (n, P) initial weights; mask (n, P) or None.

    on_check(step, rows (n_active,), psnr (n_active,)): called every ``cfg.check_every`` steps
    with the chunk rows still active and the PSNR of the weights evaluated at that step.

    Returns (best params (n, P), best PSNR (n,), diverged (n,) bool, image-steps run).
    """
    n = params.shape[0]
    best, best_psnr = params.clone(), torch.full((n,), -math.inf, device=params.device)
    diverged = torch.zeros(n, dtype=torch.bool, device=params.device)
    active = torch.arange(n, device=params.device)  # chunk rows still being fitted
    p, tgt = params.clone(), targets
    m, v = torch.zeros_like(p), torch.zeros_like(p)
    act_mask = mask
    beta1, beta2 = cfg.betas
    image_steps = 0
    # Rows that diverged since the last check. They leave the batch at the next check, not at
    # once: testing for them every step would cost a device-to-host sync per step on a GPU.
    # Until then they keep computing, but their best weights no longer change.
    flagged = torch.zeros(n, dtype=torch.bool, device=params.device)
    for step in range(cfg.steps):
        mse, grad = siren.loss_and_grad(p, arch, coords, tgt)
        image_steps += p.shape[0]
        psnr = psnr_from_mse(mse)  # (n_active,)
        improved = (psnr > best_psnr[active]) & ~flagged  # NaN compares False: a NaN never becomes best
        # A row-wise select, not boolean indexing: no device-to-host sync on every step.
        best[active] = torch.where(improved[:, None], p, best[active]) if cfg.keep_best else p
        best_psnr[active] = torch.where(improved, psnr, best_psnr[active])
        flagged |= ~torch.isfinite(mse) | (psnr < best_psnr[active] - cfg.divergence_drop_db)

        # Adam (torch.optim.Adam's formula), one step for every active image.
        t = step + 1
        if act_mask is not None:
            grad.mul_(act_mask)
        m.lerp_(grad, 1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(cfg.eps)
        p.addcdiv_(m, denom, value=-cosine_lr(cfg, step, lr) / (1 - beta1**t))
        if act_mask is not None:
            p.mul_(act_mask)  # pruned weights stay exactly zero

        if on_check is not None and t % cfg.check_every == 0:
            on_check(t, active, psnr)
        if progress is not None and t % cfg.check_every == 0:
            # never past the total: float steps add up to a hair over it, which tqdm warns about
            progress.update(min(n * cfg.check_every / cfg.steps, progress.total - progress.n))
            progress.set_postfix(psnr=f"{best_psnr.mean().item():.2f}")
        if t % cfg.check_every == 0 or t == cfg.steps:
            reached = best_psnr[active] >= cfg.target_psnr if cfg.target_psnr else torch.zeros_like(flagged)
            diverged[active[flagged]] = True
            done = flagged | reached
            if done.any():
                keep = ~done
                active, p, m, v, tgt, flagged = active[keep], p[keep], m[keep], v[keep], tgt[keep], flagged[keep]
                act_mask = act_mask[keep] if act_mask is not None else None
                if coords.dim() == 3:
                    coords = coords[keep]
                if active.numel() == 0:
                    break
    if not cfg.keep_best and active.numel():
        best[active] = p  # the last weights: after all cfg.steps updates
    return best, best_psnr, diverged, image_steps


def _refit_diverged(targets, coords, arch, cfg, params0, seeds, fresh_draws, chunk_mask, best, psnr, diverged):
    """Refit a chunk's diverged (or collapsed) rows, up to ``cfg.max_refits`` times at a halving rate,
    each from a fresh SIREN draw (``fresh_draws``) or from the row's own start ``params0`` (n, P).
    A refit's weights replace ``best``/``psnr`` (n, P)/(n,) in place where better.
    Returns (rows refitted, image-steps run): an image refitted twice counts once."""
    refits = image_steps = 0
    device = best.device
    lr = cfg.lr
    for attempt in range(cfg.max_refits):
        rows = diverged.nonzero().flatten()
        if rows.numel() == 0:
            break
        if attempt == 0:  # later attempts refit a subset of these rows
            refits = rows.numel()
        lr *= cfg.refit_lr_factor
        if fresh_draws:
            fresh_seeds = [s + (attempt + 1) * 1_000_003 for s in (seeds[i] for i in rows.tolist())]
            fresh = siren.init_params(arch, fresh_seeds).to(device)
        else:  # the image's own starting weights (a learned init, or weights being retrained)
            fresh = params0[rows.cpu()].to(device)
        sub_mask = chunk_mask[rows] if chunk_mask is not None else None
        if sub_mask is not None:
            fresh = fresh * sub_mask
        rbest, rpsnr, rdiv, steps = _fit_chunk(targets[rows], coords, fresh, arch, cfg, lr, sub_mask, None)
        image_steps += steps
        better = rpsnr > psnr[rows]
        best[rows[better]] = rbest[better]
        psnr[rows[better]] = rpsnr[better]
        diverged[rows] = rdiv | collapsed(targets[rows], psnr[rows], cfg)
    return refits, image_steps


def fit(
    images: torch.Tensor,
    arch: Arch,
    cfg: FitConfig,
    device: str | torch.device = "cpu",
    init: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    seed_offset: int = 0,
    progress: bool = True,
    on_chunk=None,
    start_chunk: int = 0,
    on_check=None,
) -> FitResult:
    """Fit one SIREN per image of ``images`` (uint8, N×C×H×W), chunk by chunk.

    init: (N, P) starting weights, or (P,) one init shared by every image (a learned init);
    default: SIREN init seeded by ``cfg.seed + seed_offset + i``.
    mask: (N, P) 0/1 pruning mask; masked weights are zero and stay zero.
    on_chunk(index, start, FitResult): called after each chunk (used for checkpoints);
    start_chunk skips the chunks a resumed run already has.
    on_check(step, rows (n_active,) global image indices, psnr (n_active,)): called every
    ``cfg.check_every`` steps of the first fit of each chunk (benchmarks trace PSNR with it).
    """
    n, c, h, w = images.shape
    device = torch.device(device)
    coords = siren.coordinate_grid(h, w, device=device)  # (HW, 2)
    size = chunk_size_for(arch, h * w, cfg)
    out = torch.empty(n, arch.n_params)
    out_psnr = torch.empty(n)
    refits = image_steps = 0
    bar = tqdm(total=float(n), unit="img", desc="encode", disable=not progress, smoothing=0.1,
               bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} [{elapsed}<{remaining}, {rate_fmt}{postfix}]")
    bar.update(min(start_chunk * size, n))
    with matmul_precision(cfg.precision, device):  # tf32 on a GPU when asked; float32 otherwise
        for index, start in enumerate(range(0, n, size)):
            if index < start_chunk:
                continue
            stop = min(start + size, n)
            seeds = range(cfg.seed + seed_offset + start, cfg.seed + seed_offset + stop)
            if init is None:
                params0 = siren.init_params(arch, seeds)
            elif init.dim() == 1:  # one shared (learned) init, broadcast to every image
                params0 = init.float().cpu().expand(stop - start, -1).clone()
            else:
                params0 = init[start:stop]
            chunk_mask = mask[start:stop].to(device) if mask is not None else None
            if chunk_mask is not None:
                params0 = params0 * chunk_mask.cpu()
            targets = images_to_targets(images[start:stop]).to(device)
            chunk_check = None if on_check is None else (
                lambda t, rows, psnr, start=start: on_check(t, rows + start, psnr))
            best, psnr, diverged, steps = _fit_chunk(targets, coords, params0.to(device), arch, cfg,
                                                     cfg.lr, chunk_mask, bar, chunk_check)
            image_steps += steps
            diverged |= collapsed(targets, psnr, cfg)
            refitted, steps = _refit_diverged(targets, coords, arch, cfg, params0, seeds, init is None,
                                              chunk_mask, best, psnr, diverged)
            refits += refitted
            image_steps += steps
            best = torch.nan_to_num(best, nan=0.0, posinf=0.0, neginf=0.0)  # a set never holds NaN weights
            out[start:stop] = best.cpu()
            out_psnr[start:stop] = psnr.cpu()
            bar.update(stop - bar.n)
            if on_chunk is not None:
                on_chunk(index, start, FitResult(out[start:stop], out_psnr[start:stop], refits, image_steps))
    bar.close()
    return FitResult(out, out_psnr, refits, image_steps)
