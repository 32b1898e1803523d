"""SIREN over stacked weights: the one forward pass that fitting and decoding share.

Weights are data. The weights of N images live in one flat matrix ``params`` of shape (N, P)
(P = ``Arch.n_params``); :func:`layer_views` cuts it into per-layer views ``W`` (N, fan_in,
fan_out) and ``b`` (N, 1, fan_out) without copying. Every linear map is one ``baddbmm`` over
the leading image dimension, so thousands of tiny MLPs run as a handful of batched kernels.

Conventions (see DESIGN.md):
- coordinates are pixel centres on [-1, 1]; column ``x`` first, then row ``y``;
- a sine layer computes ``sin(w0 * (x @ W + b))``; the output layer is linear;
- the network's output lives on [-1, 1]; pixel value = (output + 1) / 2.
"""
from __future__ import annotations

import math

import torch

from .config import Arch


def coordinate_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel-centre coordinates of an H×W image on [-1, 1], row-major: shape (H*W, 2) as (x, y)."""
    ys = (torch.arange(height, device=device, dtype=dtype) * 2 + 1) / height - 1  # (H,)
    xs = (torch.arange(width, device=device, dtype=dtype) * 2 + 1) / width - 1  # (W,)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")  # (H, W) each
    return torch.stack([grid_x, grid_y], dim=-1).reshape(height * width, 2)  # (H*W, 2)


def layer_views(params: torch.Tensor, arch: Arch) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Cut flat parameters (N, P) into per-layer (W (N, in, out), b (N, 1, out)) views."""
    n = params.shape[0]
    views, offset = [], 0
    for fan_in, fan_out in arch.layer_shapes():
        weight = params[:, offset : offset + fan_in * fan_out].view(n, fan_in, fan_out)
        offset += fan_in * fan_out
        bias = params[:, offset : offset + fan_out].view(n, 1, fan_out)
        offset += fan_out
        views.append((weight, bias))
    return views


def layer_kinds(arch: Arch) -> torch.Tensor:
    """For each of the P parameters: 0 first layer, 1 hidden layer, 2 output layer. Shape (P,)."""
    kinds = []
    last = len(arch.layer_shapes()) - 1
    for i, (fan_in, fan_out) in enumerate(arch.layer_shapes()):
        kind = 0 if i == 0 else (2 if i == last else 1)
        kinds += [kind] * (fan_in * fan_out + fan_out)
    return torch.tensor(kinds, dtype=torch.uint8)


def init_params(arch: Arch, seeds: torch.Tensor | list[int]) -> torch.Tensor:
    """SIREN initialization, one image per seed, so any chunking or sharding gives the same weights.

    Weights (Sitzmann et al. 2020, Sec. 3.2): first layer U(-1/fan_in, 1/fan_in); every later
    layer, the linear output included, U(-sqrt(6/fan_in)/w0, +sqrt(6/fan_in)/w0).
    Biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's nn.Linear default, which the SIREN
    reference implementation keeps. Returns float32 (len(seeds), P) on the CPU.
    """
    seeds = [int(s) for s in seeds]
    params = torch.empty(len(seeds), arch.n_params)
    generator = torch.Generator()
    for row, seed in enumerate(seeds):
        generator.manual_seed(seed)
        for i, (weight, bias) in enumerate(layer_views(params[row : row + 1], arch)):
            fan_in = weight.shape[1]
            bound = 1.0 / fan_in if i == 0 else math.sqrt(6.0 / fan_in) / arch.w0
            weight.uniform_(-bound, bound, generator=generator)
            bias.uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), generator=generator)
    return params


def _first_input(coords: torch.Tensor, n: int) -> torch.Tensor:
    """Coordinates as a batched input: (P, 2) shared by all images, or (N, P, 2) per image."""
    return coords.expand(n, *coords.shape) if coords.dim() == 2 else coords


def forward(params: torch.Tensor, arch: Arch, coords: torch.Tensor) -> torch.Tensor:
    """Evaluate N SIRENs at coordinates (P, 2) or (N, P, 2). Returns (N, P, C) on [-1, 1] (unclamped)."""
    layers = layer_views(params, arch)
    x = _first_input(coords.to(params.dtype), params.shape[0])  # (N, P, 2)
    for weight, bias in layers[:-1]:
        x = torch.sin(torch.baddbmm(bias, x, weight, beta=arch.w0, alpha=arch.w0))  # (N, P, H)
    weight, bias = layers[-1]
    return torch.baddbmm(bias, x, weight)  # (N, P, C)


def loss_and_grad(
    params: torch.Tensor, arch: Arch, coords: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image MSE (N,) and its gradient (N, P), by a hand-written backward pass.

    Same maths as autograd on :func:`forward` with loss = sum over images of each image's
    mean squared error (paper Eq. 1 up to the 1/n), so every image gets exactly the gradient of
    its own loss. Written out because it folds w0 into the small weight tensors instead of the
    large activations and keeps the graph bookkeeping off the hot path.
    target: (N, P, C) on [-1, 1].
    """
    n = params.shape[0]
    layers = layer_views(params, arch)
    w0 = arch.w0
    inputs, cosines = [_first_input(coords.to(params.dtype), n)], []
    for weight, bias in layers[:-1]:
        z = torch.baddbmm(bias, inputs[-1], weight, beta=w0, alpha=w0)  # (N, P, H)
        inputs.append(torch.sin(z))
        cosines.append(torch.cos_(z))
    weight, bias = layers[-1]
    diff = torch.baddbmm(bias, inputs[-1], weight).sub_(target)  # (N, P, C)
    mse = diff.square().mean(dim=(1, 2))  # (N,)

    grad = torch.empty_like(params)
    grad_layers = layer_views(grad, arch)
    g = diff.mul_(2.0 / (diff.shape[1] * diff.shape[2]))  # dL/d(output), (N, P, C)
    for i in range(len(layers) - 1, -1, -1):
        weight, _ = layers[i]
        grad_weight, grad_bias = grad_layers[i]
        scale = 1.0 if i == len(layers) - 1 else w0
        if i < len(layers) - 1:
            g = g.mul_(cosines[i])  # d/dz without the w0 factor, (N, P, H)
        grad_weight.copy_(torch.bmm(inputs[i].transpose(1, 2), g).mul_(scale))  # (N, in, out)
        grad_bias.copy_(g.sum(dim=1, keepdim=True).mul_(scale))
        if i > 0:
            g = torch.bmm(g, (weight * scale).transpose(1, 2))  # dL/d(input of layer i), (N, P, in)
    return mse, grad
