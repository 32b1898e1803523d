"""SIREN over stacked weights: the one forward pass that fitting and decoding share.

Weights are data. The weights of N images live in one flat matrix ``params`` of shape (N, P)
(P = ``Arch.n_params``); :func:`layer_views` cuts it into per-layer views ``W`` (N, fan_in,
fan_out) and ``b`` (N, 1, fan_out) without copying. Every linear map is one ``baddbmm`` over
the leading image dimension, so thousands of tiny MLPs run as a handful of batched kernels.

Conventions (shared by the encoder, every decoder and the file format):
- coordinates are pixel centres on [-1, 1]; column ``x`` first, then row ``y``;
- a sine layer computes ``sin(w0 * (x @ W + b))``; the output layer is linear;
- the network's output lives on [-1, 1]; pixel value = (output + 1) / 2.
"""
from __future__ import annotations

import math
import threading

import torch

from rapidinr.core.config import Arch


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


def init_bound(fan_in: int, w0: float) -> float:
    """SIREN's bound on the weights of every layer after the first: sqrt(6 / fan_in) / w0."""
    return math.sqrt(6.0 / fan_in) / w0


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
            bound = 1.0 / fan_in if i == 0 else init_bound(fan_in, arch.w0)
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


# Working memory of one micro-batch of loss_and_grad on the CPU with one thread: small enough to
# stay in cache. Measured here (3x15, 32x32, 256 images): one thread runs ~1.2-1.5x faster in
# micro-batches of ~11 images (6 MB) than of 1 or 44; two threads run best at ~24 MB (each op is
# split between them), 2.5x faster than one batch of 256, whose large temporaries also cost page
# faults on every allocation.
CPU_MICRO_BATCH_BYTES = 6 << 20

# CPU only: reusable activation buffers for the shape last used, one set per thread: two fits
# in two threads (a notebook's background fit, a thread pool) must never write each other's buffers.
_WORKSPACE = threading.local()
_WORKSPACE_MAX_BYTES = 64 << 20  # larger sets of buffers are plain temporaries, never kept


def _workspace(n: int, points: int, arch: Arch, dtype, device) -> dict:
    """Activation buffers for ``n`` images, reused step after step so the hot CPU loop allocates
    nothing (a GPU's caching allocator already does this). Buffers hold at least ``n`` rows.

    Shapes follow ``arch.layer_shapes()``, so architectures with per-layer widths work too:
    ``sin[i]``/``cos[i]`` (n, P, fan_out of sine layer i), ``g[i]`` (n, P, fan_in of layer i).
    """
    shapes = tuple(arch.layer_shapes())
    key = (points, shapes, dtype, str(device))
    kept = getattr(_WORKSPACE, "buffers", None)
    if kept is None:
        kept = _WORKSPACE.buffers = {}
    ws = kept.get(key)
    if ws is None or ws["rows"] < n:
        new = lambda width: torch.empty((n, points, width), dtype=dtype, device=device)  # noqa: E731
        ws = {"rows": n, "sin": [new(o) for _, o in shapes[:-1]], "cos": [new(o) for _, o in shapes[:-1]],
              "g": [None] + [new(i) for i, _ in shapes[1:]], "out": new(shapes[-1][1])}
        nbytes = sum(t.nbytes for t in [*ws["sin"], *ws["cos"], *ws["g"][1:], ws["out"]])
        kept.clear()
        if torch.device(device).type == "cpu" and nbytes <= _WORKSPACE_MAX_BYTES:
            kept[key] = ws
    if ws["rows"] == n:
        return ws
    return {"rows": n, "sin": [t[:n] for t in ws["sin"]], "cos": [t[:n] for t in ws["cos"]],
            "g": [None] + [t[:n] for t in ws["g"][1:]], "out": ws["out"][:n]}


def micro_batch_for(arch: Arch, points: int, n: int, device) -> int:
    """Images per micro-batch: all of them on a GPU; a cache-sized slice on the CPU."""
    if torch.device(device).type != "cpu":
        return max(n, 1)
    per_image = 4 * points * (3 * sum(o for _, o in arch.layer_shapes()[:-1]) + arch.channels)
    threads = torch.get_num_threads()
    budget = CPU_MICRO_BATCH_BYTES * (1 if threads == 1 else 2 * threads)
    return max(1, min(n, budget // per_image))


def loss_and_grad(
    params: torch.Tensor, arch: Arch, coords: torch.Tensor, target: torch.Tensor,
    micro_batch: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image MSE (N,) and its gradient (N, P), by a hand-written backward pass.

    Same maths as autograd on :func:`forward` with loss = sum over images of each image's
    mean squared error (paper Eq. 1 up to the 1/n), so every image gets exactly the gradient of
    its own loss. Written out because it folds w0 into the small weight tensors instead of the
    large activations, keeps the graph bookkeeping off the hot path, and reuses its activation
    buffers. On the CPU the images go through in cache-sized micro-batches (``micro_batch``
    images at a time; default from :func:`micro_batch_for`); every image's result is the same.
    target: (N, P, C) on [-1, 1].
    """
    n = params.shape[0]
    grad = torch.empty_like(params)  # (N, P)
    mse = torch.empty(n, dtype=params.dtype, device=params.device)  # (N,)
    step = micro_batch or micro_batch_for(arch, target.shape[1], n, params.device)
    for start in range(0, n, step):
        rows = slice(start, min(start + step, n))
        grid = coords[rows] if coords.dim() == 3 else coords
        _loss_and_grad_into(params[rows], arch, grid, target[rows], mse[rows], grad[rows])
    return mse, grad


def _loss_and_grad_into(params, arch, coords, target, mse_out, grad_out) -> None:
    """loss_and_grad for one micro-batch, written into ``mse_out`` (n,) and ``grad_out`` (n, P)."""
    n = params.shape[0]
    layers = layer_views(params, arch)
    w0 = arch.w0
    ws = _workspace(n, target.shape[1], arch, params.dtype, params.device)
    inputs = [_first_input(coords.to(params.dtype), n)]  # (n, P, 2), then each layer's sine output
    for i, (weight, bias) in enumerate(layers[:-1]):
        multiply = first_layer if i == 0 else torch.bmm
        z = multiply(inputs[-1], weight * w0, out=ws["cos"][i]).add_(bias * w0)  # (n, P, H)
        inputs.append(torch.sin(z, out=ws["sin"][i]))
        torch.cos(z, out=z)  # the buffer now holds cos(z) for the backward pass
    weight, bias = layers[-1]
    diff = torch.bmm(inputs[-1], weight, out=ws["out"]).add_(bias).sub_(target)  # (n, P, C)
    mse_out.copy_(diff.square().mean(dim=(1, 2)))

    grad_layers = layer_views(grad_out, arch)
    g = diff.mul_(2.0 / (diff.shape[1] * diff.shape[2]))  # dL/d(output), (n, P, C)
    last = len(layers) - 1
    for i in range(last, -1, -1):
        weight, _ = layers[i]
        grad_weight, grad_bias = grad_layers[i]
        scale = 1.0 if i == last else w0
        if i < last:
            g = ws["cos"][i].mul_(g)  # d/dz without the w0 factor, (n, P, H)
        if i == 0:
            grad_weight.copy_(first_layer_grad(inputs[0], g).mul_(scale))  # (n, 2, out)
        else:
            grad_weight.copy_(torch.bmm(inputs[i].transpose(1, 2), g).mul_(scale))  # (n, in, out)
        grad_bias.copy_(g.sum(dim=1, keepdim=True).mul_(scale))
        if i > 0:
            g = torch.bmm(g, (weight * scale).transpose(1, 2), out=ws["g"][i])  # dL/d(input of layer i), (n, P, in)


def exact_first_layer(device) -> bool:
    """Whether the first layer is computed elementwise: on CUDA, where TF32 tensor cores would
    round the coordinates and first-layer weights to 10 mantissa bits, an error that w0 = 30
    multiplies into the sine's phase. The CPU's bmm is float32 anyway."""
    return torch.device(device).type == "cuda"


def first_layer(x: torch.Tensor, weight: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``bmm(x, weight)`` for the first layer, x (n, P, 2) @ weight (n, 2, H) → (n, P, H); on CUDA
    as two elementwise products (always float32, never TF32: :func:`exact_first_layer`)."""
    if not exact_first_layer(x.device):
        return torch.bmm(x, weight, out=out)
    z = torch.mul(x[..., 0:1], weight[:, 0:1, :], out=out)  # (n, P, H)
    return z.addcmul_(x[..., 1:2], weight[:, 1:2, :])


def first_layer_grad(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``bmm(x.transpose(1, 2), g)`` for the first layer's weights: x (n, P, 2), g (n, P, H) → (n, 2, H);
    on CUDA as elementwise products and sums (float32, never TF32)."""
    if not exact_first_layer(x.device):
        return torch.bmm(x.transpose(1, 2), g)
    return torch.stack([(x[..., k : k + 1] * g).sum(dim=1) for k in range(x.shape[-1])], dim=1)


def loss_and_grad_functional(params: torch.Tensor, arch: Arch, coords: torch.Tensor,
                             target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`loss_and_grad` without preallocated buffers or in-place ops: the form that
    ``torch.compile`` can fuse (bias + sine + cosine in one kernel, the backward's products in
    others). Same maths; used by :func:`compiled_loss_and_grad`."""
    layers = layer_views(params, arch)
    w0 = arch.w0
    inputs, cosines = [_first_input(coords.to(params.dtype), params.shape[0])], []
    for weight, bias in layers[:-1]:
        z = torch.bmm(inputs[-1], weight * w0) + bias * w0  # (N, P, H)
        inputs.append(torch.sin(z))
        cosines.append(torch.cos(z))
    weight, bias = layers[-1]
    diff = torch.bmm(inputs[-1], weight) + bias - target  # (N, P, C)
    mse = diff.square().mean(dim=(1, 2))  # (N,)
    g = diff * (2.0 / (diff.shape[1] * diff.shape[2]))
    grads = []
    for i in range(len(layers) - 1, -1, -1):
        weight, _ = layers[i]
        scale = 1.0 if i == len(layers) - 1 else w0
        if i < len(layers) - 1:
            g = g * cosines[i]
        grads.append(((torch.bmm(inputs[i].transpose(1, 2), g) * scale).flatten(1),
                      (g.sum(dim=1) * scale)))
        if i > 0:
            g = torch.bmm(g, (weight * scale).transpose(1, 2))
    flat = [t for pair in reversed(grads) for t in pair]
    return mse, torch.cat(flat, dim=1)  # (N,), (N, P)


_COMPILED: dict = {}


def compiled_loss_and_grad(mode: str | None = None):
    """``torch.compile`` of :func:`loss_and_grad_functional` (built once, on first use).

    Off by default everywhere: compiling takes tens of seconds and pays off only on a GPU with
    many images; ``benchmarks/gpu_encode.py --compile`` measures it. Install it for a run with
    ``siren.loss_and_grad = siren.compiled_loss_and_grad()`` (same signature; ``micro_batch``
    is ignored)."""
    if mode not in _COMPILED:
        fn = torch.compile(loss_and_grad_functional, mode=mode, dynamic=True)
        _COMPILED[mode] = lambda params, arch, coords, target, micro_batch=None: fn(params, arch, coords, target)
    return _COMPILED[mode]
