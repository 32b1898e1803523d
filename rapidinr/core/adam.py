"""The one Adam of the package: batched over stacked weights (n, P), rows can leave.

Adam is elementwise, so one Adam over the (n, P) matrix of n images' weights is exactly n
independent Adams, one per image (torch.optim.Adam's formula, tested against it). It is written
out rather than taken from ``torch.optim`` because its state must shrink with the batch: images
that reach their target, or diverge, leave (:meth:`BatchedAdam.keep`) and stop costing compute.
The fit, quantization-aware fine-tuning and the Reptile inner loop all step through it.
"""
from __future__ import annotations

import math

import torch


class BatchedAdam:
    """Adam state for weights ``params`` (n, P), updated in place by :meth:`step`."""

    def __init__(self, params: torch.Tensor, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params = params  # (n, P) float32, the weights being optimized (updated in place)
        self.m = torch.zeros_like(params)  # (n, P) first moment
        self.v = torch.zeros_like(params)  # (n, P) second moment
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.t = 0  # steps taken; the bias corrections use it

    def step(self, grad: torch.Tensor, lr: float, mask: torch.Tensor | None = None) -> None:
        """One Adam step with gradient ``grad`` (n, P; scaled in place by ``mask`` when given) at
        rate ``lr``. Masked weights (mask (n, P) of 0/1) stay exactly zero."""
        self.t += 1
        if mask is not None:
            grad.mul_(mask)
        self.m.lerp_(grad, 1 - self.beta1)
        self.v.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        denom = (self.v.sqrt() / math.sqrt(1 - self.beta2**self.t)).add_(self.eps)
        self.params.addcdiv_(self.m, denom, value=-lr / (1 - self.beta1**self.t))
        if mask is not None:
            self.params.mul_(mask)

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only ``rows`` (a bool (n,) or index tensor) of the weights and their moments."""
        self.params, self.m, self.v = self.params[rows], self.m[rows], self.v[rows]
