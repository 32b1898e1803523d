"""Paper Fig. 3: PSNR against size, INR variants against JPEG and downsampled JPEG, from rd results JSON."""
from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure

from rapidinr.core.errors import UserError
from rapidinr.study.figures.registry import Producer
from rapidinr.study.figures.samples import crops, settings_for
from rapidinr.study.rd import RDConfig, sweep

# Marker and line per variant family; anything else gets matplotlib's defaults.
STYLES = {
    "INR fp32": dict(marker="o", color="C0"),
    "INR pruned": dict(marker="s", color="C1"),
    "INR 16-bit": dict(marker="^", color="C2"),
    "INR 8-bit layer-wise": dict(marker="D", color="C3"),
    "INR 8-bit all layers": dict(marker="v", color="C4"),
    "JPEG": dict(marker=".", color="k", linestyle="-"),
    "JPEG standard tables": dict(marker=".", color="0.5", linestyle=":"),
}


def load_results(results) -> dict:
    """A results dict, or the path of a results JSON written by ``rapidinr rd``."""
    if isinstance(results, (str, Path)):
        return json.loads(Path(results).read_text())
    return results


def rd_curves(results, x: str = "bytes") -> dict[str, tuple[list[float], list[float]]]:
    """{variant: (x values, mean PSNR values)} sorted by x; ``x`` is ``bytes`` or ``bpp``."""
    results = load_results(results)
    out = {}
    for name, entry in results["results"].items():
        points = sorted(zip(entry[x], entry["psnr"]))
        out[name] = ([p[0] for p in points], [p[1] for p in points])
    return out


def plot_rd(results, x: str = "bytes", variants: list[str] | None = None, ax=None, title: str | None = None):
    """Draw PSNR against bytes per image (or bpp) for every variant; returns the Figure."""
    results = load_results(results)
    if ax is None:
        fig = Figure(figsize=(6.4, 4.4))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    for name, (xs, ys) in rd_curves(results, x).items():
        if variants is not None and name not in variants:
            continue
        style = dict(STYLES.get(name, {"marker": "x"}))
        if name.startswith("JPEG downsampled"):
            style = dict(marker=".", color="0.3", linestyle="--")
        style.setdefault("linestyle", "-" if len(xs) > 1 else "none")
        ax.plot(xs, ys, label=name, **style)
    ax.set_xlabel("bytes per image (real file sizes)" if x == "bytes" else "bits per pixel (real file sizes)")
    ax.set_ylabel("PSNR (dB, mean over images)")
    ax.set_title(title or f"{results.get('name', 'rate-distortion')} ({results.get('images', '?')} images)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return fig


# -- `rapidinr figures` (Fig. 3) ------------------------------------------------------------------
# Quick: a live sweep over three small SIRENs on 16 photo crops (seconds). Full: a committed results
# file of ``rapidinr rd`` (GPU, the paper's steps) or of benchmarks/compression.py, whichever is there.
FULL_RESULT_FILES = ("rd-full.json", "compression-cuda.json", "compression-cpu.json")
FIG3_VARIANTS = ("INR fp32", "INR pruned", "INR 16-bit", "INR 8-bit layer-wise", "INR 8-bit all layers", "JPEG")


def quick_sweep(ctx) -> dict:
    """The rate-distortion sweep at :mod:`rapidinr.study.figures.samples`' quick (or full) settings, live."""
    s = settings_for(ctx.quick)
    cfg = RDConfig(archs=s.rd_archs, fit=s.fit_config(ctx.seed), prune=s.prune_config(), qualities=s.qualities)
    return sweep(crops(s.images, s.size, ctx.seed), cfg, ctx.device, progress=ctx.progress,
                 source=f"sample-crops:{s.size}x{s.size}")


def full_results(results_dir) -> tuple[dict, str]:
    """The first committed full-size results file found (a ``compression`` report: its largest run)."""
    for name in FULL_RESULT_FILES:
        path = Path(results_dir) / name
        if path.is_file():
            doc = load_results(path)
            if "runs" in doc:  # benchmarks/compression.py: {"runs": {"32x32": sweep, "64x64": sweep}}
                doc = list(doc["runs"].values())[-1]
            return doc, str(path)
    raise UserError(f"Fig. 3 full-size: no results file {Path(results_dir) / FULL_RESULT_FILES[0]} (or "
                    f"{', '.join(FULL_RESULT_FILES[1:])}); run `rapidinr rd` or benchmarks/compression.py, or use --quick")


def _log_bytes_axis(ax) -> None:
    """Log x axis with plain round tick labels (100, 200, 500, 1000, ...), no crowded minor labels."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    ticks = [m * 10**e for e in range(1, 8) for m in (1, 2, 5) if lo <= m * 10**e <= hi]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())


def _make_fig3(ctx):
    results, source = (quick_sweep(ctx), "computed") if ctx.quick else full_results(ctx.results_dir)
    names = [n for n in results["results"] if n in FIG3_VARIANTS or n.startswith("JPEG downsampled")]
    where = "live" if ctx.quick else Path(source).name
    fig = plot_rd(results, "bytes", names, title=f"Fig. 3: PSNR against bytes per image ({results.get('images', '?')} "
                  f"images {results.get('height', '?')}x{results.get('width', '?')}, {where})")
    _log_bytes_axis(fig.axes[0])  # JPEG's curve is steep at a few hundred bytes; INRs reach thousands
    return fig, {"source": source, "results": results}


PRODUCERS = [Producer("fig3_rate_distortion", "Fig. 3", "PSNR against bytes per image: INR variants, JPEG, "
                      "downsampled JPEG", _make_fig3)]
