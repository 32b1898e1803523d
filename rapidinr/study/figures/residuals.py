"""Paper Fig. 6: one image as original, INR, JPEG, downsampled JPEG and WebP at the same size, with residuals.

JPEG, downsampled JPEG and WebP (method 6; a codec of the field beside the paper's) get the INR's
bytes per image as their budget (highest quality that fits), so the reconstructions cost about the
same; the residual is |original − reconstruction|, drawn with a colour bar.
"""
from __future__ import annotations

import torch
from matplotlib.figure import Figure

from rapidinr.core.metrics import psnr, to_uint8
from rapidinr.study import baselines
from rapidinr.study.figures.registry import Producer
from rapidinr.study.figures.samples import fitted, settings_for


def residual_data(images: torch.Tensor, inrs, index: int, budget: float | None = None,
                  factors=(2, 4)) -> dict:
    """Reconstructions and residuals of image ``index``.

    images: the originals (N, C, H, W) uint8 the set was encoded from; ``budget``: bytes for the
    JPEGs (default: the set's bytes per image from its real file size). Returns {method: {"image":
    (C, H, W) uint8, "residual": (C, H, W) float on [0, 1], "psnr": dB, "bytes": int}}.
    """
    original = images[index : index + 1]  # (1, C, H, W)
    if budget is None:
        budget = inrs.info()["bytes_per_image"]
    inr = to_uint8(inrs.decode([index]).cpu())
    jpeg = baselines.jpeg_at_budget(original, budget)
    down = baselines.jpeg_downsampled_at_budget(original, budget, factors)
    webp = baselines.at_cap(original, "webp", budget)
    out = {}
    for name, rec, size in [("original", original, 0), ("INR", inr, budget),
                            (f"JPEG q{int(jpeg.quality[0])}", jpeg.images, int(jpeg.bytes[0])),
                            (f"JPEG ×{int(down.factor[0])} q{int(down.quality[0])}", down.images, int(down.bytes[0])),
                            (f"WebP q{int(webp.quality[0])}", webp.images, int(webp.bytes[0]))]:
        out[name] = {"image": rec[0], "residual": (original[0].float() - rec[0].float()).abs() / 255,
                     "psnr": float(psnr(original, rec)[0]), "bytes": round(float(size), 1)}
    return out


def plot_residuals(data: dict, gain: float = 4.0, title: str = ""):
    """Top row: the images; bottom row: residuals ×``gain``. ``data`` from :func:`residual_data`."""
    fig = Figure(figsize=(2.4 * len(data), 5.0))
    axes = fig.subplots(2, len(data), squeeze=False)
    for col, (name, entry) in enumerate(data.items()):
        image = entry["image"].permute(1, 2, 0).numpy()  # (H, W, C)
        residual = (entry["residual"] * gain).clamp(0, 1).mean(dim=0).numpy()  # (H, W)
        axes[0, col].imshow(image[:, :, 0] if image.shape[2] == 1 else image, cmap="gray",
                            interpolation="nearest")
        label = name if name == "original" else f"{name}\n{entry['psnr']:.2f} dB, {entry['bytes']:.0f} B"
        axes[0, col].set_title(label, fontsize=8)
        shown = axes[1, col].imshow(residual, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
        axes[1, col].set_title("residual (zero)" if name == "original" else f"residual ×{gain:g}", fontsize=8)
        for ax in axes[:, col]:
            ax.set_axis_off()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.colorbar(shown, ax=list(axes[1]), fraction=0.02, pad=0.01,
                 label=f"|residual| ×{gain:g} (mean over channels, 1 = {255 / gain:.0f} levels)")
    return fig


# -- `rapidinr figures` (Fig. 6) ------------------------------------------------------------------
def _make_fig6(ctx):
    """Image 0 of :mod:`rapidinr.study.figures.samples`' compressed set (pruned, hidden layers 8-bit) against
    JPEG and downsampled JPEG at its bytes per image."""
    s = settings_for(ctx.quick)
    images, _, packed = fitted(s, ctx.device, ctx.seed)
    index = int(packed.psnr.cpu().argsort()[len(packed) // 2])  # the median image by INR PSNR: typical, not picked
    data = residual_data(images, packed, index)
    fig = plot_residuals(data, title=f"Fig. 6: crop {index} (median INR PSNR of {len(packed)}), {packed.arch.name} INR "
                         "(pruned, 8-bit hidden layers) against JPEG and WebP at the same bytes")
    summary = {name: {"psnr": e["psnr"], "bytes": e["bytes"], "residual_mean": float(e["residual"].mean())}
               for name, e in data.items()}
    return fig, {"settings": s.to_json(), "index": index, "bytes_per_image": packed.info()["bytes_per_image"],
                 "methods": summary}


PRODUCERS = [Producer("fig6_residuals", "Fig. 6", "One image: original, INR, JPEG, downsampled JPEG and WebP at the "
                      "same size, with residuals", _make_fig6)]
