"""Paper Fig. 3: PSNR against size, INR variants against JPEG and downsampled JPEG, from rd results JSON;
with the field's classical codecs, their best-classical envelope and the matching published curves
where the results hold them. And "where Rapid-INR stands": BD-rate of each INR variant against
each classical codec (:func:`plot_standing`)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from rapidinr.core.errors import UserError
from rapidinr.study import baselines
from rapidinr.study.figures.registry import Producer
from rapidinr.study.figures.samples import crops, settings_for
from rapidinr.study.rd import ENVELOPE, RDConfig, sweep

# Marker and line per variant family; anything else gets matplotlib's defaults.
STYLES = {
    "INR fp32": dict(marker="o", color="C0"),
    "INR pruned": dict(marker="s", color="C1"),
    "INR 16-bit": dict(marker="^", color="C2"),
    "INR 8-bit layer-wise": dict(marker="D", color="C3"),
    "INR 8-bit all layers": dict(marker="v", color="C4"),
    "INR compact": dict(marker="*", color="darkorange", markersize=9),
    "INR compact, learned init": dict(marker="*", color="magenta", markersize=11),
    "JPEG": dict(marker=".", color="k", linestyle="-"),
    "JPEG standard tables": dict(marker=".", color="0.5", linestyle=":"),
    ENVELOPE: dict(color="k", linewidth=6.0, alpha=0.2, marker="none", zorder=0),
}
CODEC_COLORS = {"jpeg": "silver", "jpeg-opt": "C5", "jpeg-opt420": "dimgray", "webp": "C6", "avif": "navy",
                "jp2": "C8", "jxl": "C9"}


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
        points = sorted((a, b) for a, b in zip(entry[x], entry["psnr"]) if a is not None and b is not None)
        out[name] = ([p[0] for p in points], [p[1] for p in points])  # an unmet cap has no point
    return out


def _style(name: str, n_points: int) -> dict:
    if name in STYLES:
        style = dict(STYLES[name])
    elif name.startswith("JPEG downsampled"):
        style = dict(marker=".", color="0.3", linestyle="--")
    elif name.split("-x")[0] in CODEC_COLORS:  # the field's codecs: dashed, downsampled ones dotted
        style = dict(marker=".", color=CODEC_COLORS[name.split("-x")[0]], linestyle=":" if "-x" in name else "--")
    else:
        style = {"marker": "x"}
    style.setdefault("linestyle", "-" if n_points > 1 else "none")
    return style


def plot_rd(results, x: str = "bytes", variants: list[str] | None = None, ax=None, title: str | None = None,
            log_x: bool = False, label_suffix: str = ""):
    """Draw PSNR against bytes per image (or bpp) for every variant; returns the Figure. ``log_x``:
    a log x axis with round tick labels, as ``rapidinr figures`` draws Fig. 3. ``label_suffix``:
    appended to the labels of our curves (not the published ones), e.g. how short the run was."""
    results = load_results(results)
    if ax is None:
        fig = Figure(figsize=(6.4, 4.4))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    for name, (xs, ys) in rd_curves(results, x).items():
        if variants is not None and name not in variants:
            continue
        ax.plot(xs, ys, label=name + label_suffix, **_style(name, len(xs)))
    for k, (name, entry) in enumerate((results.get("published") or {}).items()):
        if variants is not None and name not in variants and "published" not in variants:
            continue
        ax.plot(entry[x], entry["psnr"], label=name, color=f"C{k % 10}", linestyle="-.", marker="+", alpha=0.7)
    ax.set_xlabel("bytes per image (real file sizes)" if x == "bytes" else "bits per pixel (real file sizes)")
    ax.set_ylabel("PSNR (dB, mean over images)")
    ax.set_title(title or f"{results.get('name', 'rate-distortion')} ({results.get('images', '?')} images)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    if log_x:
        _log_bytes_axis(ax)
    return fig


# -- `rapidinr figures` (Fig. 3) ------------------------------------------------------------------
# Quick: a live sweep over three small SIRENs on 16 photo crops (seconds). Full: a committed results
# file of ``rapidinr rd`` (GPU, the paper's steps) or of benchmarks/compression.py, whichever is there.
FULL_RESULT_FILES = ("rd-full.json", "rd-study-32x32-cuda.json", "rd-study-32x32-cpu.json", "compression-cuda.json",
                     "compression-cpu.json")
QUICK_CODECS = ("jpeg", "jpeg-opt", "webp", "avif", "jp2")  # the quick figure's field (JPEG XL: the [jxl] extra)
# What the paper reports for Fig. 3 in its text (the plotted values themselves are not given).
PAPER_FIG3 = ("the paper (Fig. 3, Mini-ImageNet, 102flowers, CIFAR-10; plotted values not in its text): "
              "mean pruning ratio 15% on CIFAR-10,\n25% on 102flowers and Mini-ImageNet; its 16-bit and 8-bit INRs "
              "are pruned too; PSNR grows about linearly with INR size")
FIG3_VARIANTS = ("INR fp32", "INR pruned", "INR 16-bit", "INR 8-bit layer-wise", "INR 8-bit all layers", "INR compact",
                 "INR compact, learned init", "JPEG")


_SWEEPS: dict = {}  # (quick, seed, device) → the live sweep, shared by Fig. 3 and the standing figure


def quick_sweep(ctx) -> dict:
    """The rate-distortion sweep at :mod:`rapidinr.study.figures.samples`' quick (or full) settings, live
    (once per run: Fig. 3 and "where Rapid-INR stands" draw the same sweep)."""
    key = (ctx.quick, ctx.seed, str(ctx.device))
    if key not in _SWEEPS:
        _SWEEPS[key] = _live_sweep(ctx)
    return _SWEEPS[key]


def _live_sweep(ctx) -> dict:
    s = settings_for(ctx.quick)
    images = crops(s.images, s.size, ctx.seed)
    # the study's caps scaled by pixel count, less those no codec can meet at this (small) size
    floor = min(baselines.smallest_file(images, name) for name in QUICK_CODECS)
    caps = [round(c * (s.size / 32) ** 2) for c in (320, 480, 640, 900, 1200)]
    caps = tuple(c for c in caps if c >= floor) or (floor,)
    cfg = RDConfig(archs=s.rd_archs, fit=s.fit_config(ctx.seed), prune=s.prune_config(), qualities=s.qualities,
                   codecs=QUICK_CODECS, protocol="cap", caps=caps)
    return sweep(images, cfg, ctx.device, progress=ctx.progress, source=f"sample-crops:{s.size}x{s.size}")


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
    names = [n for n in results["results"] if n in FIG3_VARIANTS or n.startswith("JPEG downsampled")
             or n == ENVELOPE or n.split("-x")[0] in CODEC_COLORS] + list(results.get("published") or {})
    where = "live" if ctx.quick else Path(source).name
    # log x: JPEG's curve is steep at a few hundred bytes; INRs reach thousands
    fig = plot_rd(results, "bytes", names, title=f"Fig. 3: PSNR against bytes per image ({results.get('images', '?')} "
                  f"images {results.get('height', '?')}x{results.get('width', '?')}, {where})", log_x=True)
    fig.axes[0].text(0.01, 0.99, paper_note(results), transform=fig.axes[0].transAxes, fontsize=6, va="top",
                     color="0.25")
    return fig, {"source": source, "results": results}


def paper_note(results) -> str:
    """The paper's Fig. 3 facts beside ours: its pruning ratios and this run's (mean zeros of the pruned INRs)."""
    pruned = (load_results(results)["results"].get("INR pruned") or {}).get("sparsity") or []
    ours = (f"\nhere: INR pruned {100 * sum(pruned) / len(pruned):.0f}% zeros (mean over {len(pruned)} archs)"
            if pruned else "")
    return PAPER_FIG3 + ours


def plot_standing(results, ax=None, title: str | None = None):
    """Where Rapid-INR stands: BD-rate (%, bytes at equal PSNR; negative = the INR needs fewer
    bytes) of each INR variant (rows) against each classical curve (columns), from a results
    ``bd`` table. Cells without enough overlap say so instead of a number."""
    results = load_results(results)
    rows = results.get("bd") or []
    if not rows:
        raise UserError("where Rapid-INR stands: these results hold no bd table (run `rapidinr rd` with --codecs)")
    tests = list(dict.fromkeys(r["test"] for r in rows))
    anchors = list(dict.fromkeys(r["anchor"] for r in rows))
    grid = np.full((len(tests), len(anchors)), np.nan)
    for r in rows:
        if r["bd_rate_percent"] is not None:
            grid[tests.index(r["test"]), anchors.index(r["anchor"])] = r["bd_rate_percent"]
    if ax is None:
        fig = Figure(figsize=(1.0 + 0.8 * len(anchors), 1.2 + 0.38 * len(tests)))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    finite = np.abs(grid[np.isfinite(grid)])
    limit = float(min(finite.max(), 300)) if finite.size else 100.0
    image = ax.imshow(np.clip(grid, -limit, limit), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for i in range(len(tests)):
        for j in range(len(anchors)):
            v = grid[i, j]
            ax.text(j, i, "n/a" if np.isnan(v) else f"{v:+.0f}%", ha="center", va="center", fontsize=6)
    ax.set_xticks(range(len(anchors)), anchors, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(tests)), tests, fontsize=7)
    fig.colorbar(image, ax=ax, label="BD-rate of the INR (%; n/a: not enough overlap)")
    ax.set_title(title or "Where Rapid-INR stands: BD-rate against each codec", fontsize=9)
    return fig


def _make_standing(ctx):
    results, source = (quick_sweep(ctx), "computed") if ctx.quick else full_results(ctx.results_dir)
    if not results.get("bd"):
        raise UserError(f"where Rapid-INR stands: {source} holds no bd table; run benchmarks/rd_study.py or use --quick")
    fig = plot_standing(results, title=f"Where Rapid-INR stands ({results.get('images', '?')} images "
                        f"{results.get('height', '?')}x{results.get('width', '?')}): BD-rate vs each codec")
    fig.tight_layout()
    return fig, {"source": source, "bd": results["bd"]}


PRODUCERS = [Producer("fig3_rate_distortion", "Fig. 3", "PSNR against bytes per image: INR variants, JPEG, "
                      "downsampled JPEG, the field's codecs and their envelope, matching published curves", _make_fig3),
             Producer("rd_standing", "Fig. 3b", "Where Rapid-INR stands: BD-rate of each INR variant against each "
                      "classical codec", _make_standing)]
