"""Paper Fig. 4: weight distributions of the first, hidden and last layers across a set.

The first layer's weights spread wide and flat, the hidden layers' are narrow and centred on zero,
the output layer's sit away from zero: the reason the paper quantizes only the hidden layers.
"""
from __future__ import annotations

import torch
from matplotlib.figure import Figure

from rapidinr.core.config import Arch
from rapidinr.core.siren import layer_views
from rapidinr.study.figures.registry import Producer
from rapidinr.study.figures.samples import fitted, settings_for


def weight_samples(params: torch.Tensor, arch: Arch, normalize: bool = True) -> dict[str, torch.Tensor]:
    """Weights (not biases) of every image grouped by layer kind: {kind: 1-D float tensor}.

    params: (N, P) float weights (``INRSet.dense_params()``). normalize: divide each image's layer by its
    largest magnitude, so images of different scales share one axis [-1, 1] (Fig. 4 is normalized).
    Pruned (exactly zero) weights are left out.
    """
    views = layer_views(params.float().cpu(), arch)
    groups = {"first": [views[0][0]], "hidden": [w for w, _ in views[1:-1]], "last": [views[-1][0]]}
    out = {}
    for kind, mats in groups.items():
        values = []
        for w in mats:
            flat = w.reshape(w.shape[0], -1)  # (N, in*out)
            if normalize:
                flat = flat / flat.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
            values.append(flat[flat != 0])
        out[kind] = torch.cat(values) if values else torch.empty(0)
    return out


def weight_histograms(params: torch.Tensor, arch: Arch, bins: int = 101, normalize: bool = True) -> dict:
    """{kind: (bin edges (bins+1,), density (bins,))} from :func:`weight_samples`."""
    out = {}
    for kind, values in weight_samples(params, arch, normalize).items():
        if values.numel() == 0:
            continue
        low, high = (-1.0, 1.0) if normalize else (float(values.min()), float(values.max()) + 1e-12)
        counts = torch.histc(values, bins=bins, min=low, max=high)
        edges = torch.linspace(low, high, bins + 1)
        out[kind] = (edges, counts / (counts.sum() * (edges[1] - edges[0])))
    return out


def plot_weights(params: torch.Tensor, arch: Arch, bins: int = 101, normalize: bool = True, title: str = ""):
    """One panel per layer kind with its weight histogram; returns the Figure."""
    hists = weight_histograms(params, arch, bins, normalize)
    fig = Figure(figsize=(3.2 * len(hists), 3.0))
    axes = fig.subplots(1, len(hists), squeeze=False)[0]
    for ax, (kind, (edges, density)) in zip(axes, hists.items()):
        ax.stairs(density.numpy(), edges.numpy(), fill=True, alpha=0.7)
        ax.set_title(f"{kind} layer{'s' if kind == 'hidden' else ''}")
        ax.set_xlabel("normalized weight" if normalize else "weight")
    axes[0].set_ylabel("density")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# -- `rapidinr figures` (Fig. 4) ------------------------------------------------------------------
def _make_fig4(ctx):
    """Histograms of the fp32 fit of :mod:`rapidinr.study.figures.samples` (quick: 16 crops, full: 64)."""
    s = settings_for(ctx.quick)
    _, inrs, _ = fitted(s, ctx.device, ctx.seed)
    bins = 41 if ctx.quick else 101  # quick: a few hundred first-layer weights; coarser bins read better
    fig = plot_weights(inrs.dense_params(), inrs.arch, bins=bins, title=f"Fig. 4: normalized weights of {len(inrs)} {inrs.arch.name} "
                       f"SIRENs ({s.size}x{s.size} photo crops, {s.steps} steps)")
    for ax in fig.axes:
        ax.set_xlim(-1, 1)
    stats = {kind: {"count": int(v.numel()), "mean": float(v.mean()), "std": float(v.std()),
                    "share_within_0.1": float((v.abs() < 0.1).float().mean())}
             for kind, v in weight_samples(inrs.dense_params(), inrs.arch).items() if v.numel()}
    hists = {kind: {"edges": e.tolist(), "density": d.tolist()}
             for kind, (e, d) in weight_histograms(inrs.dense_params(), inrs.arch, bins).items()}
    return fig, {"settings": s.to_json(), "arch": inrs.arch.name, "images": len(inrs), "stats": stats,
                 "histograms": hists}


PRODUCERS = [Producer("fig4_weights", "Fig. 4", "Normalized weight histograms of the first, hidden and last layers",
                      _make_fig4)]
