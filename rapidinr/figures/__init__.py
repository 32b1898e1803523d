"""Plots for the paper's figures, drawn from results JSON files and library functions.

Every figure is a :class:`Producer`: a name (the file stem), the paper's figure number, and a
``make(ctx)`` that returns a matplotlib ``Figure`` and the data behind it (a JSON-able dict).
A module that draws figures lists its producers in a module-level ``PRODUCERS``; registering
the module is one line in :data:`MODULES`. A listed module that does not exist yet is skipped,
so figures can land one at a time. :func:`write_figures` is what ``rapidinr figures`` and
``rapidinr demo`` call: PNG, SVG and JSON per figure, each file written atomically.

Producers draw on ``matplotlib.figure.Figure`` directly (never pyplot), so nothing here needs a
display or changes matplotlib's global state.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import UserError

# One line per figure module (each defines PRODUCERS). Order = the paper's order.
MODULES = [
    "rapidinr.figures.rate_distortion",  # Fig. 3: PSNR against bytes per image
    "rapidinr.figures.weights",  # Fig. 4: weight histograms per layer kind
    "rapidinr.figures.search",  # Fig. 5: architecture and hyperparameter search
    "rapidinr.figures.residuals",  # Fig. 6: original, INR, JPEG, residuals
    "rapidinr.figures.training",  # Figs. 7-8: accuracy and training time
]

DEFAULT_RESULTS_DIR = Path(__file__).resolve().parent.parent.parent / "benchmarks" / "results"


@dataclass(frozen=True)
class FigureContext:
    """What every producer is told: quick (seconds on a CPU) or full-size, and where things are."""

    quick: bool = True  # quick settings: small grids that run in seconds on 2 CPU cores
    device: str = "cpu"  # where fits run
    results_dir: Path = DEFAULT_RESULTS_DIR  # committed full-size results JSON files
    progress: bool = False  # progress bars while computing
    seed: int = 0


@dataclass(frozen=True)
class Producer:
    """One figure: ``make(ctx) -> (matplotlib Figure, data dict)``."""

    name: str  # file stem, e.g. "fig5a_layers"
    paper: str  # the paper's number, e.g. "Fig. 5a"
    title: str  # one line: what the figure shows
    make: Callable = field(repr=False)


def producers() -> list[Producer]:
    """Every registered figure, in the paper's order (modules not written yet are skipped)."""
    out = []
    for module_name in MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name == module_name:
                continue  # this figure module has not landed yet
            raise
        out += list(getattr(module, "PRODUCERS", []))
    return out


def select(names: list[str] | None = None) -> list[Producer]:
    """The producers named (all when ``names`` is empty); an unknown name is a clear error."""
    available = producers()
    if not names:
        return available
    by_name = {p.name: p for p in available}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise UserError(f"--only: unknown figure {', '.join(unknown)}; available: {', '.join(by_name) or 'none'}")
    return [by_name[n] for n in names]


def figure_bytes(fig, fmt: str) -> bytes:
    """Render a matplotlib Figure to PNG or SVG bytes (no display needed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=120 if fmt == "png" else None, bbox_inches="tight")
    return buffer.getvalue()


def write_figure(producer: Producer, ctx: FigureContext, out_dir: Path) -> dict:
    """Make one figure and write ``NAME.png``, ``NAME.svg`` and ``NAME.json`` into ``out_dir``."""
    from .. import fileformat

    start = time.perf_counter()
    fig, data = producer.make(ctx)
    seconds = time.perf_counter() - start
    png, svg = figure_bytes(fig, "png"), figure_bytes(fig, "svg")
    doc = {"name": producer.name, "paper": producer.paper, "title": producer.title, "quick": ctx.quick,
           "seconds": round(seconds, 3), "data": data}
    text = json.dumps(doc, indent=1, default=_json_default).encode()
    paths = {ext: out_dir / f"{producer.name}.{ext}" for ext in ("png", "svg", "json")}
    for ext, payload in (("png", png), ("svg", svg), ("json", text)):
        fileformat.write_atomic(paths[ext], payload)
    return {"name": producer.name, "paper": producer.paper, "seconds": round(seconds, 2),
            "files": [str(p) for p in paths.values()]}


@contextlib.contextmanager
def _cpu_threads(n: int | None):
    """Run with ``n`` torch CPU threads, then restore. Quick figures fit tiny SIRENs in small
    batches; one thread avoids oversubscribing a shared CPU (about 8x faster on a loaded 2-core
    machine, measured), and the figures' content does not depend on it."""
    import torch

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
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{out_dir}: cannot create folder ({err.strerror or err})") from None
    ctx = FigureContext(quick=quick, device=str(device), progress=progress,
                        results_dir=Path(results_dir) if results_dir else DEFAULT_RESULTS_DIR)
    done = []
    for producer in chosen:
        try:
            with _cpu_threads(1 if quick and ctx.device == "cpu" else None):
                entry = write_figure(producer, ctx, out_dir)
            log(f"  {producer.paper:<8} {producer.name:<24} {entry['seconds']:6.1f} s  {out_dir / producer.name}.png|svg|json")
        except UserError as err:
            entry = {"name": producer.name, "paper": producer.paper, "error": str(err)}
            log(f"  {producer.paper:<8} {producer.name:<24} skipped: {err}")
        done.append(entry)
    return done
