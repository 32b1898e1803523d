"""The paper's three rounds (Sec. IV, VI-A) as one pipeline, then layer-wise quantization.

round 1  fit at full precision (paper: 5000 steps at 5e-4)                 -> fit.fit
round 2  L1-unstructured pruning of a fixed share, retrain with the mask    -> optional
round 3  dynamic pruning: ratio from each image's PSNR by a schedule, retrain -> optional
quantize hidden (or all) layers to 8/16 bits, optional quantization-aware fine-tuning

Every retraining goes through ``fit.fit`` with the mask, which keeps pruned weights exactly zero.
The PSNR that drives round 3 is the one PSNR (8-bit rounded decode) after the round before.
The result is an INRSet whose store is a :class:`~rapidinr.codec.store.PackedStore` (or the plain
:class:`~rapidinr.codec.store.DenseStore` when nothing was asked for).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from rapidinr.codec.inrset import INRSet
from rapidinr.codec.measure import measure_weights
from rapidinr.codec.prune import PruneConfig, l1_mask, weight_sparsity
from rapidinr.codec.quantize import QuantConfig, fake_quantize
from rapidinr.codec.store import DenseStore, PackedStore
from rapidinr.core import siren
from rapidinr.core.adam import BatchedAdam
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.errors import UserError
from rapidinr.encoding.fit import chunk_size_for, cosine_lr, fit, images_to_targets, psnr_from_mse

LOSSLESS = (None, "zstd")


@dataclass(frozen=True)
class CompressConfig:
    """Rounds 2-3 (``prune``), quantization (``quant``) and the lossless stage; None skips each."""

    prune: PruneConfig | None = None
    quant: QuantConfig | None = None
    lossless: str | None = None  # None or "zstd": a lossless stage over the packed file payload

    def __post_init__(self) -> None:
        if self.lossless not in LOSSLESS:
            raise UserError(f"--lossless: expected zstd or none, got {self.lossless!r}")

    @property
    def active(self) -> bool:
        return (self.prune is not None and self.prune.active) or self.quant is not None or self.lossless is not None

    def to_json(self) -> dict:
        return {"prune": self.prune.to_json() if self.prune else None,
                "quant": self.quant.to_json() if self.quant else None, "lossless": self.lossless}


def _round(name: str, params, arch, images, device, seconds: float, **extra) -> dict:
    psnr = measure_weights(params, arch, images, device)
    return {"round": name, "psnr_mean": float(psnr.mean()) if psnr.numel() else None,
            "weight_sparsity": float(weight_sparsity(params, arch).mean()) if len(params) else 0.0,
            "seconds": round(seconds, 3), **extra, "_psnr": psnr}


def retrain(images, params, mask, arch: Arch, fit_cfg: FitConfig, prune: PruneConfig, device,
            progress: bool = True) -> torch.Tensor:
    """Retrain masked weights at the pruning rounds' rate (no target-PSNR early stop)."""
    cfg = dataclasses.replace(fit_cfg, steps=prune.retrain_steps, lr=prune.retrain_lr, target_psnr=None)
    return fit(images, arch, cfg, device=device, init=params * mask, mask=mask, progress=progress).params


def finetune_quantized(images, params, arch: Arch, quant: QuantConfig, fit_cfg: FitConfig, device,
                       progress: bool = True) -> torch.Tensor:
    """Quantization-aware fine-tuning with a straight-through estimator.

    The loss is taken at the quantized weights, its gradient applied to float shadow weights;
    zeros (pruned weights) stay zero. Returns each image's float weights whose *quantized* decode
    had the best PSNR seen (the starting point included), so it never makes an image worse.
    """
    layout = quant.layout(arch)
    n, _, h, w = images.shape
    device = torch.device(device)
    coords = siren.coordinate_grid(h, w, device=device)  # (HW, 2)
    cfg = dataclasses.replace(fit_cfg, steps=quant.finetune_steps, lr=quant.finetune_lr)
    size = chunk_size_for(arch, h * w, cfg)
    out = params.clone()
    for start in tqdm(range(0, n, size), desc="quant-finetune", disable=not progress):
        adam = BatchedAdam(params[start : start + size].to(device).clone(), cfg.betas, cfg.eps)  # (b, P)
        p = adam.params
        mask = (p != 0).float()
        targets = images_to_targets(images[start : start + size]).to(device)  # (b, HW, C)
        best, best_psnr = p.clone(), torch.full((p.shape[0],), -math.inf, device=device)
        for step in range(cfg.steps + 1):
            mse, grad = siren.loss_and_grad(fake_quantize(p, layout), arch, coords, targets)
            psnr = psnr_from_mse(mse)  # (b,)
            better = psnr > best_psnr  # (b,): a row-wise select, never boolean indexing (a host sync a step)
            best = torch.where(better[:, None], p, best)
            best_psnr = torch.where(better, psnr, best_psnr)
            if step == cfg.steps:
                break
            adam.step(grad, cosine_lr(cfg, step, cfg.lr), mask)
        out[start : start + size] = best.cpu()
    return out


def compress(images: torch.Tensor, arch: Arch, fit_cfg: FitConfig, cfg: CompressConfig, device="cpu",
             init: torch.Tensor | None = None, progress: bool = True, meta: dict | None = None,
             labels: torch.Tensor | None = None, class_names: list[str] | None = None) -> INRSet:
    """Run the pipeline on uint8 images (N, C, H, W).

    init: round-1 weights (N, P) from an earlier fit (round 1 is then skipped, e.g. to share one
    fit between the variants of a rate-distortion sweep). Returns the INRSet on ``device`` with
    per-round statistics in ``meta["compression"]``.
    """
    _, _, h, w = images.shape
    rounds = []
    start = time.perf_counter()
    params = init if init is not None else fit(images, arch, fit_cfg, device=device, progress=progress).params
    params = params.cpu()
    rounds.append(_round("fit", params, arch, images, device, time.perf_counter() - start,
                         reused=init is not None))
    prune = cfg.prune
    mask = None
    if prune is not None and prune.runs_l1(h, w):
        start = time.perf_counter()
        mask = l1_mask(params, arch, prune.l1_ratio, prune.scope)
        params = retrain(images, params, mask, arch, fit_cfg, prune, device, progress)
        rounds.append(_round("l1-prune", params, arch, images, device, time.perf_counter() - start,
                             ratio=prune.l1_ratio))
    if prune is not None and prune.schedule is not None:
        start = time.perf_counter()
        ratio = prune.schedule.ratio(rounds[-1]["_psnr"])  # (N,)
        mask = l1_mask(params, arch, ratio, prune.scope, mask)
        params = retrain(images, params, mask, arch, fit_cfg, prune, device, progress)
        rounds.append(_round("dynamic-prune", params, arch, images, device, time.perf_counter() - start,
                             schedule=prune.schedule.name, ratio_mean=float(ratio.mean()) if len(ratio) else 0.0))
    quant = cfg.quant
    if quant is not None:
        start = time.perf_counter()
        if quant.finetune_steps:
            params = finetune_quantized(images, params, arch, quant, fit_cfg, device, progress)
        store = PackedStore.from_params(params, arch, quant.bits, quant.layers, cfg.lossless, quant.bias_bits)
        rounds.append(_round(f"quantize-{quant.bits}-{quant.layers}", store.dense(), arch, images, device,
                             time.perf_counter() - start))
    elif cfg.active:
        store = PackedStore.from_params(params, arch, 32, lossless=cfg.lossless)
    else:
        store = DenseStore(params)
    psnr = rounds[-1]["_psnr"]
    meta = dict(meta or {})
    meta["compression"] = {**cfg.to_json(), "rounds": [{k: v for k, v in r.items() if k != "_psnr"}
                                                        for r in rounds]}
    return INRSet(store, arch, h, w, labels, class_names, psnr, meta).to(device)
