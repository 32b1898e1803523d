"""Batched fitting: every image of a chunk fitted at once by one Adam over stacked weights.

One :class:`~rapidinr.core.adam.BatchedAdam` over the chunk's (n, P) weight matrix is exactly n
independent Adams, one per image (tested against a per-image ``nn.Module`` loop); images that
reach the target PSNR, or diverge, leave the active batch and stop costing compute. A diverged
or collapsed image is refitted at a lower rate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from rapidinr.core import siren
from rapidinr.core.adam import BatchedAdam
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


@dataclass(frozen=True)
class ChunkProblem:
    """What one chunk's fit works on: its targets, grid, network shape, settings and pruning mask."""

    targets: torch.Tensor  # (n, HW, C) on [-1, 1]
    coords: torch.Tensor  # (HW, 2) pixel centres on [-1, 1]
    arch: Arch
    cfg: FitConfig
    mask: torch.Tensor | None = None  # (n, P) 0/1: pruned weights are zero and stay zero

    def rows(self, rows: torch.Tensor) -> "ChunkProblem":
        """The same problem for a subset of the chunk's images (rows (k,) indices)."""
        return ChunkProblem(self.targets[rows], self.coords, self.arch, self.cfg,
                            self.mask[rows] if self.mask is not None else None)


@dataclass
class ChunkFit:
    """A chunk's outcome so far: each row's best weights and PSNR, and which rows diverged."""

    best: torch.Tensor  # (n, P) best weights seen
    best_psnr: torch.Tensor  # (n,) their PSNR (float output)
    diverged: torch.Tensor  # (n,) bool: NaN, a drop past cfg.divergence_drop_db, or collapsed
    image_steps: int  # Adam steps run, summed over rows


def _fit_chunk(problem: ChunkProblem, params: torch.Tensor, lr: float, progress=None, on_check=None) -> ChunkFit:
    """Fit one chunk from starting weights ``params`` (n, P) at peak rate ``lr``.

    on_check(step, rows (n_active,), psnr (n_active,)): called every ``cfg.check_every`` steps
    with the chunk rows still active and the PSNR of the weights evaluated at that step.
    """
    cfg, arch, coords, tgt, act_mask = problem.cfg, problem.arch, problem.coords, problem.targets, problem.mask
    n = params.shape[0]
    best, best_psnr = params.clone(), torch.full((n,), -math.inf, device=params.device)
    diverged = torch.zeros(n, dtype=torch.bool, device=params.device)
    active = torch.arange(n, device=params.device)  # chunk rows still being fitted
    adam = BatchedAdam(params.clone(), cfg.betas, cfg.eps)
    image_steps = 0
    # Rows that diverged since the last check. They leave the batch at the next check, not at
    # once: testing for them every step would cost a device-to-host sync per step on a GPU.
    # Until then they keep computing, but their best weights no longer change.
    flagged = torch.zeros(n, dtype=torch.bool, device=params.device)
    for step in range(cfg.steps):
        p = adam.params  # (n_active, P)
        mse, grad = siren.loss_and_grad(p, arch, coords, tgt)
        image_steps += p.shape[0]
        psnr = psnr_from_mse(mse)  # (n_active,)
        improved = (psnr > best_psnr[active]) & ~flagged  # NaN compares False: a NaN never becomes best
        # A row-wise select, not boolean indexing: no device-to-host sync on every step.
        best[active] = torch.where(improved[:, None], p, best[active]) if cfg.keep_best else p
        best_psnr[active] = torch.where(improved, psnr, best_psnr[active])
        flagged |= ~torch.isfinite(mse) | (psnr < best_psnr[active] - cfg.divergence_drop_db)
        adam.step(grad, cosine_lr(cfg, step, lr), act_mask)

        t = step + 1
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
                adam.keep(keep)
                active, tgt, flagged = active[keep], tgt[keep], flagged[keep]
                act_mask = act_mask[keep] if act_mask is not None else None
                if coords.dim() == 3:
                    coords = coords[keep]
                if active.numel() == 0:
                    break
    if not cfg.keep_best and active.numel():
        best[active] = adam.params  # the last weights: after all cfg.steps updates
    return ChunkFit(best, best_psnr, diverged, image_steps)


def _refit_diverged(problem: ChunkProblem, result: ChunkFit, restart) -> int:
    """Refit a chunk's diverged (or collapsed) rows, up to ``cfg.max_refits`` times at a halving rate.

    restart(rows (k,), attempt) gives the rows' starting weights (k, P): a fresh SIREN draw, or
    the rows' own start (a learned init, or weights being retrained). A refit's weights replace
    ``result``'s where better (in place; its image-steps are added). Returns the number of images
    refitted (an image refitted twice counts once).
    """
    cfg = problem.cfg
    refitted = torch.zeros_like(result.diverged)
    lr = cfg.lr
    for attempt in range(cfg.max_refits):
        rows = result.diverged.nonzero().flatten()
        if rows.numel() == 0:
            break
        refitted[rows] = True
        lr *= cfg.refit_lr_factor
        sub = problem.rows(rows)
        start = restart(rows, attempt).to(result.best.device)
        if sub.mask is not None:
            start = start * sub.mask
        again = _fit_chunk(sub, start, lr)
        result.image_steps += again.image_steps
        better = again.best_psnr > result.best_psnr[rows]
        result.best[rows[better]] = again.best[better]
        result.best_psnr[rows[better]] = again.best_psnr[better]
        result.diverged[rows] = again.diverged | collapsed(sub.targets, result.best_psnr[rows], cfg)
    return int(refitted.sum())


def _fresh_draws(arch: Arch, seeds: range):
    """restart() for a refit from new SIREN draws: each attempt reseeds the rows' images."""
    def restart(rows: torch.Tensor, attempt: int) -> torch.Tensor:
        return siren.init_params(arch, [seeds[i] + (attempt + 1) * 1_000_003 for i in rows.tolist()])
    return restart


def fit(
    images: torch.Tensor,
    arch: Arch,
    cfg: FitConfig,
    device: str | torch.device = "cpu",
    init: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    seed_offset: int = 0,
    progress=True,
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
    progress: True/False for a bar of its own, or a tqdm bar to advance by ``n`` images (a caller
    fitting a set chunk by chunk keeps one bar over all of it).
    """
    n, c, h, w = images.shape
    device = torch.device(device)
    coords = siren.coordinate_grid(h, w, device=device)  # (HW, 2)
    size = chunk_size_for(arch, h * w, cfg)
    out = torch.empty(n, arch.n_params)
    out_psnr = torch.empty(n)
    refits = image_steps = 0
    owned = not isinstance(progress, tqdm)
    bar = image_bar(float(n), "encode", bool(progress)) if owned else progress
    origin = bar.n  # where this fit's images start on a caller's bar
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
            problem = ChunkProblem(images_to_targets(images[start:stop]).to(device), coords, arch, cfg, chunk_mask)
            chunk_check = None if on_check is None else (
                lambda t, rows, psnr, start=start: on_check(t, rows + start, psnr))
            result = _fit_chunk(problem, params0.to(device), cfg.lr, bar, chunk_check)
            result.diverged |= collapsed(problem.targets, result.best_psnr, cfg)
            restart = (_fresh_draws(arch, seeds) if init is None
                       else lambda rows, attempt, params0=params0: params0[rows.cpu()])
            refits += _refit_diverged(problem, result, restart)
            image_steps += result.image_steps
            best, psnr = result.best, result.best_psnr
            best = torch.nan_to_num(best, nan=0.0, posinf=0.0, neginf=0.0)  # a set never holds NaN weights
            out[start:stop] = best.cpu()
            out_psnr[start:stop] = psnr.cpu()
            bar.update(max(0.0, origin + stop - bar.n))
            if on_chunk is not None:
                on_chunk(index, start, FitResult(out[start:stop], out_psnr[start:stop], refits, image_steps))
    if owned:
        bar.close()
    return FitResult(out, out_psnr, refits, image_steps)


def image_bar(total: float, desc: str, enabled: bool = True) -> tqdm:
    """A progress bar counting (fractional) images, as fit advances it."""
    return tqdm(total=total, unit="img", desc=desc, disable=not enabled, smoothing=0.1,
                bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} [{elapsed}<{remaining}, {rate_fmt}{postfix}]")
