"""What every figure producer is: a :class:`Producer` (name, paper figure, ``make(ctx)``) and the
:class:`FigureContext` it is made in. Figure modules import this; the package gathers them."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

DEFAULT_RESULTS_DIR = Path(__file__).resolve().parents[3] / "benchmarks" / "results"


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
