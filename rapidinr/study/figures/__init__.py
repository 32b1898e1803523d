"""Plots for the paper's figures, drawn from results JSON files and library functions.

Every figure is a :class:`Producer`: a name (the file stem), the paper's figure number, and a
``make(ctx)`` that returns a matplotlib ``Figure`` and the data behind it (a JSON-able dict).
A module that draws figures lists its producers in a module-level ``PRODUCERS``; registering
the module is one line in :data:`MODULES`. :func:`write_figures` is what ``rapidinr figures`` and
``rapidinr demo`` call: PNG, SVG and JSON per figure, each file written atomically.

Producers draw on ``matplotlib.figure.Figure`` directly (never pyplot), so nothing here needs a
display or changes matplotlib's global state.
"""
from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path

import torch

from rapidinr.core.errors import UserError, pick_named
from rapidinr.core.files import make_folder, write_atomic
from rapidinr.study.figures import rate_distortion, residuals, search, training, weights
from rapidinr.study.figures.registry import DEFAULT_RESULTS_DIR, FigureContext, Producer

# Every figure module, in the paper's order; each defines PRODUCERS.
MODULES = [
    rate_distortion,  # Fig. 3: PSNR against bytes per image
    weights,  # Fig. 4: weight histograms per layer kind
    search,  # Fig. 5: architecture and hyperparameter search
    residuals,  # Fig. 6: original, INR, JPEG, residuals
    training,  # Figs. 7-8: accuracy and training time
]


def producers() -> list[Producer]:
    """Every registered figure, in the paper's order."""
    return [p for module in MODULES for p in module.PRODUCERS]


def select(names: list[str] | None = None) -> list[Producer]:
    """The producers named (all when ``names`` is empty); an unknown name is a clear error."""
    return pick_named({p.name: p for p in producers()}, names, "--only", "figure")


def figure_bytes(fig, fmt: str) -> bytes:
    """Render a matplotlib Figure to PNG or SVG bytes (no display needed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=120 if fmt == "png" else None, bbox_inches="tight")
    return buffer.getvalue()


def write_figure(producer: Producer, ctx: FigureContext, out_dir: Path) -> dict:
    """Make one figure and write ``NAME.png``, ``NAME.svg`` and ``NAME.json`` into ``out_dir``."""
    start = time.perf_counter()
    fig, data = producer.make(ctx)
    seconds = time.perf_counter() - start
    png, svg = figure_bytes(fig, "png"), figure_bytes(fig, "svg")
    doc = {"name": producer.name, "paper": producer.paper, "title": producer.title, "quick": ctx.quick,
           "seconds": round(seconds, 3), "data": data}
    text = json.dumps(doc, indent=1, default=_json_default).encode()
    paths = {ext: out_dir / f"{producer.name}.{ext}" for ext in ("png", "svg", "json")}
    for ext, payload in (("png", png), ("svg", svg), ("json", text)):
        write_atomic(paths[ext], payload)
    entry = {"name": producer.name, "paper": producer.paper, "seconds": round(seconds, 2),
             "files": [str(p) for p in paths.values()]}
    if isinstance(data, dict) and data.get("note"):
        entry["note"] = data["note"]  # e.g. a full-size figure drawn from the CPU run: said, not hidden
    return entry


@contextlib.contextmanager
def _cpu_threads(n: int | None):
    """Run with ``n`` torch CPU threads, then restore. Quick figures fit tiny SIRENs in small
    batches; one thread avoids oversubscribing a shared CPU (about 8x faster on a loaded 2-core
    machine, measured), and the figures' content does not depend on it."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _json_default(value):
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def write_figures(out_dir: str | Path, quick: bool = True, device: str = "cpu", only: list[str] | None = None,
                  results_dir: Path | None = None, progress: bool = False, log=print) -> list[dict]:
    """Regenerate figures into ``out_dir``. A figure whose input is bad (a :class:`UserError`, e.g. a
    missing results file) is reported and skipped; the others are still written.

    Returns one entry per figure: name, paper, seconds, files, or ``error``.
    """
    out_dir = Path(out_dir)
    chosen = select(only)
    make_folder(out_dir)
    ctx = FigureContext(quick=quick, device=str(device), progress=progress,
                        results_dir=Path(results_dir) if results_dir else DEFAULT_RESULTS_DIR)
    done = []
    for producer in chosen:
        try:
            with _cpu_threads(1 if quick and ctx.device == "cpu" else None):
                entry = write_figure(producer, ctx, out_dir)
            log(f"  {producer.paper:<8} {producer.name:<24} {entry['seconds']:6.1f} s  {out_dir / producer.name}.png|svg|json")
            if "note" in entry:
                log(f"           note: {entry['note']}")
        except UserError as err:
            entry = {"name": producer.name, "paper": producer.paper, "error": str(err)}
            log(f"  {producer.paper:<8} {producer.name:<24} skipped: {err}")
        done.append(entry)
    return done
