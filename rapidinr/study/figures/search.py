"""Fig. 5: design space exploration: (a) PSNR against depth at a byte budget, uniform against
tapered widths, fewer and more steps; (b) PSNR against w0 per hidden width; (c) PSNR against
the learning rate per step count, with the fits that collapse marked.

The fits are :mod:`rapidinr.study.search`'s; this module only plots rows. Full-size figures read
``search-<study>-full.json`` from the results folder when it is there (a GPU run of
``rapidinr.study.search.run_study`` with ``SearchSettings.full()``) and compute it otherwise.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from matplotlib.figure import Figure

from rapidinr.study import search
from rapidinr.study.figures.registry import FigureContext, Producer

PAPER_W0 = 30.0  # the paper's (and SIREN's) sine frequency
PAPER_LR_RANGE = (2e-4, 5e-4)  # the paper's recommended learning rates (Sec. V-B)


def _kb(nbytes: float) -> str:
    return f"{nbytes / 1024:.3g} KB"


def _arch_label(row: dict) -> str:
    """A short name for a Fig. 5a point: ``4x11`` for uniform widths, ``14-8`` (widest-narrowest) tapered."""
    widths = row.get("widths") or []
    if row.get("shape") == "tapered" and widths:
        return f"{max(widths)}-{min(widths)}"
    return row["arch"]


def plot_layers(rows: list[dict]) -> Figure:
    """Fig. 5a: one panel per byte budget; PSNR (mean over images) against the number of sine layers."""
    rows = [r for r in rows if r["sweep"] == "layers"]
    budgets = sorted({r["budget_bytes"] for r in rows})
    steps = sorted({r["steps"] for r in rows})
    fig = Figure(figsize=(5.2 * max(len(budgets), 1), 4.2))
    axes = fig.subplots(1, max(len(budgets), 1), sharey=True, squeeze=False)[0]
    colors = {"uniform": "tab:blue", "tapered": "tab:orange"}
    styles = ["--", "-", "-.", ":"]
    for ax, budget in zip(axes, budgets):
        for shape in ("uniform", "tapered"):
            for k, n_steps in enumerate(steps):
                sel = sorted((r for r in rows if r["budget_bytes"] == budget and r["shape"] == shape
                              and r["steps"] == n_steps), key=lambda r: r["layers"])
                if not sel:
                    continue
                ax.plot([r["layers"] for r in sel], [r["psnr_mean"] for r in sel], styles[k % len(styles)],
                        marker="o" if shape == "uniform" else "s", color=colors[shape],
                        label=f"{shape}, {n_steps} steps")
                if n_steps == steps[-1]:  # name the architectures once, on the most-steps line
                    for r in sel:
                        ax.annotate(_arch_label(r), (r["layers"], r["psnr_mean"]), textcoords="offset points",
                                    xytext=(0, 7 if shape == "uniform" else -14), ha="center", fontsize=8,
                                    color=colors[shape])
        ref = rows[0]
        ax.set_title(f"budget {_kb(budget)} per image ({ref['bytes_per_param']:g} B per weight)")
        ax.set_xlabel("sine layers (width sized to fill the budget)")
        ax.grid(alpha=0.3)
        ax.set_xticks(sorted({r["layers"] for r in rows}))
        ax.margins(x=0.12, y=0.12)
        ax.tick_params(labelsize=10)
    if rows:
        axes[0].legend(fontsize=9)
    axes[0].set_ylabel(f"PSNR (dB), mean of {rows[0]['images'] if rows else 0} images")
    fig.suptitle("Fig. 5a: PSNR against depth at a fixed size (labels: uniform LAYERSxWIDTH, tapered widest-narrowest)")
    return fig


def plot_w0(rows: list[dict]) -> Figure:
    """Fig. 5b: PSNR against the sine frequency w0, one line per hidden width."""
    rows = [r for r in rows if r["sweep"] == "w0"]
    fig = Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    by_width = defaultdict(list)
    for r in rows:
        by_width[(r["layers"], max(r["widths"]))].append(r)
    for (layers, width), sel in sorted(by_width.items()):
        sel.sort(key=lambda r: r["w0"])
        ax.plot([r["w0"] for r in sel], [r["psnr_mean"] for r in sel], "o-", label=f"{layers}x{width} ({sel[0]['steps']} steps)")
    ax.axvline(PAPER_W0, color="gray", ls=":", label=f"paper's w0 = {PAPER_W0:g}")
    ax.set_xlabel("w0 (frequency of sin(w0 (xW + b)))")
    ax.set_ylabel(f"PSNR (dB), mean of {rows[0]['images'] if rows else 0} images")
    ax.set_title("Fig. 5b: PSNR against w0 per hidden width")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_lr(rows: list[dict]) -> Figure:
    """Fig. 5c: PSNR against the learning rate, one line per step count; each image a faint dot;
    a red ring where some image's fit failed (ended 6 dB or more under that image's best PSNR at
    any rate, see :func:`rapidinr.study.search.mark_lr_failures`) or collapsed during the fit."""
    rows = [r for r in rows if r["sweep"] == "lr"]
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.subplots()
    ax.axvspan(*PAPER_LR_RANGE, color="green", alpha=0.08, label="paper's advice: 2e-4 to 5e-4")
    for k, n_steps in enumerate(sorted({r["steps"] for r in rows})):
        sel = sorted((r for r in rows if r["steps"] == n_steps), key=lambda r: r["lr"])
        (line,) = ax.plot([r["lr"] for r in sel], [r["psnr_mean"] for r in sel], "o-", label=f"{n_steps} steps (mean)")
        for r in sel:
            ax.scatter([r["lr"]] * len(r["psnr"]), r["psnr"], s=8, color=line.get_color(), alpha=0.35)
            failed = r.get("failed_vs_best", 0)
            if failed or r["collapsed"]:
                ax.scatter([r["lr"]], [r["psnr_mean"]], s=160, facecolors="none", edgecolors="red", linewidths=1.5)
                what = f"{n_steps} steps: {failed}/{r['images']} failed" + (f", {r['collapsed']} collapsed" if r["collapsed"] else "")
                ax.annotate(what, (r["lr"], r["psnr_mean"]), textcoords="offset points", xytext=(-70, -16 - 10 * k),
                            fontsize=7, color="red")
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate (Adam, cosine decay)")
    ax.set_ylabel("PSNR (dB); dots: single images")
    arch = rows[0]["arch"] if rows else "?"
    ax.set_title(f"Fig. 5c: PSNR against learning rate ({arch}, last weights, no refit)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


PLOTS = {"layers": plot_layers, "w0": plot_w0, "lr": plot_lr}


def study_rows(which: str, ctx: FigureContext) -> tuple[list[dict], dict, str]:
    """Rows of one study: computed live in quick mode; full-size from the results file when present."""
    settings = search.SearchSettings.quick() if ctx.quick else search.SearchSettings.full()
    path = Path(ctx.results_dir) / f"search-{which}-full.json"
    if not ctx.quick and path.is_file():
        doc = search.load_results(path)
        return doc["results"], doc.get("settings", {}), str(path)
    rows = search.run_study(which, settings, device=ctx.device, progress=ctx.progress)
    return rows, settings.to_json(), "computed"


def _producer(which: str):
    def make(ctx: FigureContext):
        rows, settings, source = study_rows(which, ctx)
        return PLOTS[which](rows), {"study": which, "source": source, "settings": settings, "rows": rows}

    return make


PRODUCERS = [
    Producer("fig5a_layers", "Fig. 5a", "PSNR against depth at fixed byte budgets, uniform vs tapered", _producer("layers")),
    Producer("fig5b_w0", "Fig. 5b", "PSNR against w0 for several hidden widths", _producer("w0")),
    Producer("fig5c_lr", "Fig. 5c", "PSNR against learning rate and steps, failed fits marked", _producer("lr")),
]
