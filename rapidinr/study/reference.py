"""The paper's way of encoding, kept as a yardstick: one ``nn.Module`` and one Adam per image.

The public Rapid-INR code fits images one at a time in a Python loop: an ``nn.Module`` of
``nn.Linear`` + sine layers, ``torch.optim.Adam`` and a cosine learning-rate schedule, with
autograd doing the backward pass. This module does exactly that (on our SIREN conventions and
our cosine schedule), so that

- ``tests/test_fit_equivalence.py`` can check that the batched fitter (:func:`rapidinr.encoding.fit.fit`,
  one hand-written Adam over stacked weights) computes the same thing, and
- ``benchmarks/encode_speed.py`` can time the per-image loop against the batched one.

This is the one place where a SIREN is an ``nn.Module``; the library never uses it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from rapidinr.core import siren
from rapidinr.core.config import Arch, FitConfig
from rapidinr.encoding.fit import cosine_lr, images_to_targets, psnr_from_mse


class SineLayer(nn.Module):
    """``sin(w0 * (x W^T + b))`` (Sitzmann et al. 2020), as in the SIREN reference code."""

    def __init__(self, fan_in: int, fan_out: int, w0: float):
        super().__init__()
        self.linear = nn.Linear(fan_in, fan_out)
        self.w0 = w0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.w0 * self.linear(x))


class SirenModule(nn.Module):
    """One image's SIREN: ``arch.layers`` sine layers and a linear output."""

    def __init__(self, arch: Arch):
        super().__init__()
        shapes = arch.layer_shapes()
        self.net = nn.Sequential(*[SineLayer(i, o, arch.w0) for i, o in shapes[:-1]],
                                 nn.Linear(*shapes[-1]))

    def linears(self) -> list[nn.Linear]:
        return [m.linear if isinstance(m, SineLayer) else m for m in self.net]

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.net(coords)  # (HW, 2) -> (HW, C)


def module_from_params(row: torch.Tensor, arch: Arch) -> SirenModule:
    """An ``nn.Module`` holding one image's flat weights (P,) (nn.Linear stores W transposed)."""
    model = SirenModule(arch)
    with torch.no_grad():
        for linear, (weight, bias) in zip(model.linears(), siren.layer_views(row.reshape(1, -1), arch)):
            linear.weight.copy_(weight[0].T)  # (out, in)
            linear.bias.copy_(bias[0, 0])
    return model


def params_from_module(model: SirenModule) -> torch.Tensor:
    """The flat weight row (P,) in :mod:`rapidinr.core.siren`'s layout."""
    parts = []
    for linear in model.linears():
        parts += [linear.weight.detach().T.reshape(-1), linear.bias.detach().reshape(-1)]
    return torch.cat(parts)


@dataclass
class ReferenceResult:
    params: torch.Tensor  # (N, P) float32: each image's weights (best or last, as cfg.keep_best)
    train_psnr: torch.Tensor  # (N,) best PSNR seen while fitting (float output)
    psnr_at: dict[int, torch.Tensor] = field(default_factory=dict)  # step -> (N,) PSNR at that step


def fit_one(image: torch.Tensor, arch: Arch, cfg: FitConfig, init: torch.Tensor | None = None,
            seed: int = 0, record_at=(), device="cpu"):
    """Fit one uint8 image (C, H, W) the paper's way. Returns (weights (P,), best PSNR, {step: PSNR}).

    Step ``t`` (1-based) evaluates the loss at the weights after ``t - 1`` updates, records its
    PSNR when ``t`` is in ``record_at``, then takes an Adam step at the cosine-scheduled rate.
    """
    c, h, w = image.shape
    row = init if init is not None else siren.init_params(arch, [seed])[0]
    model = module_from_params(row.float().cpu(), arch).to(device)
    coords = siren.coordinate_grid(h, w, device=device)  # (HW, 2)
    target = images_to_targets(image[None])[0].to(device)  # (HW, C)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: cosine_lr(cfg, step, cfg.lr) / cfg.lr)
    best_psnr, best_state, recorded = -float("inf"), None, {}
    record_at = set(record_at)
    for step in range(cfg.steps):
        loss = torch.nn.functional.mse_loss(model(coords), target)
        psnr = float(psnr_from_mse(loss.detach()))
        if step + 1 in record_at:
            recorded[step + 1] = psnr
        if psnr > best_psnr:
            best_psnr = psnr
            if cfg.keep_best:
                best_state = params_from_module(model).clone()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        if cfg.target_psnr is not None and best_psnr >= cfg.target_psnr:
            break
    weights = best_state if cfg.keep_best and best_state is not None else params_from_module(model)
    return weights.cpu(), best_psnr, recorded


def fit_loop(images: torch.Tensor, arch: Arch, cfg: FitConfig, init: torch.Tensor | None = None,
             record_at=(), device="cpu") -> ReferenceResult:
    """Fit every image of ``images`` (uint8 N×C×H×W) one after another, the paper's way.

    init: (N, P) starting weights, (P,) shared, or None (SIREN init seeded ``cfg.seed + i``,
    the same weights :func:`rapidinr.encoding.fit.fit` starts from).
    """
    n = images.shape[0]
    rows, best, traces = [], [], []
    for i in range(n):
        start = None if init is None else (init if init.dim() == 1 else init[i])
        weights, psnr, recorded = fit_one(images[i], arch, cfg, start, cfg.seed + i, record_at, device)
        rows.append(weights)
        best.append(psnr)
        traces.append(recorded)
    psnr_at = {t: torch.tensor([r[t] for r in traces]) for t in record_at if all(t in r for r in traces)}
    params = torch.stack(rows) if rows else torch.empty(0, arch.n_params)
    return ReferenceResult(params, torch.tensor(best), psnr_at)
