"""Architecture and hyperparameter search over the batched fitter (paper Sec. V, Fig. 5).

Three studies, each a list of fits of the same few images:

- :func:`layer_sweep` (Fig. 5a): at a fixed byte budget per image, the widest SIREN of each
  depth, with uniform widths or tapered ones (widening to the middle layer, then narrowing),
  each fitted for a few step counts;
- :func:`w0_sweep` (Fig. 5b): the sine frequency w0 against the hidden width;
- :func:`lr_sweep` (Fig. 5c): the learning rate against the number of steps, fitted the way the
  paper's code fits (last weights, no refit), so the rates where fits fail show as failures.

Every fit is one call of :func:`rapidinr.encoding.fit.fit` over all the images at once and is recorded as
one JSON row (:func:`run_fits`): the settings, the parameter and byte count, each image's PSNR
(the one PSNR, on 8-bit-rounded decodes), failures, refits and seconds. :func:`save_results`
writes the rows with the hardware and versions; the plots in ``rapidinr.study.figures.search`` read them.

Byte budgets count ``bytes_per_param`` bytes per weight, 2 by default: the paper's code stores
INRs with ``.half()``, and its 29 KB is a 10x40 SIREN at fp16 (15003 parameters).
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch
from tqdm.auto import tqdm

from rapidinr.codec.inrset import INRSet
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.errors import UserError
from rapidinr.core.metrics import psnr as psnr_of
from rapidinr.core.results import results_document, write_results
from rapidinr.encoding.fit import fit
from rapidinr.sources.datasets import load_sample_crops

FP16_BYTES = 2  # bytes per weight the budgets count by default (the paper's code saves fp16)
# A fit "collapsed" when its final PSNR ends this far under the best it reached while fitting
# (with keep_best=False, the paper's way): the rate was too high and the fit diverged.
COLLAPSE_DB = 3.0
# In the learning-rate study a fit "failed" when it ends this far under the best PSNR the same
# image reached at any rate with the same steps: too high a rate leaves fits stuck or diverged.
FAIL_DROP_DB = 6.0


# -- tapered architectures ----------------------------------------------------------------------
@dataclass(frozen=True)
class TaperedArch(Arch):
    """A SIREN whose sine layers have their own widths (``widths``, one per sine layer).

    :class:`Arch` has one width for every layer; this subclass overrides ``layer_shapes`` and so
    runs unchanged through ``siren`` (init, forward, backward), ``fit`` and ``INRSet.decode``,
    which all read shapes from ``layer_shapes()``. ``hidden`` is the widest layer (fit's memory
    estimate uses it). It is a search-time object: ``.rinr`` files hold uniform ``Arch`` only.
    """

    widths: tuple[int, ...] = ()

    @classmethod
    def of(cls, widths: Iterable[int], channels: int = 3, w0: float = Arch.w0) -> "TaperedArch":
        widths = tuple(int(w) for w in widths)
        if not widths or min(widths) < 1:
            raise UserError(f"tapered widths must be >= 1, got {list(widths)}")
        return cls(len(widths), max(widths), channels, w0, widths)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.widths) != self.layers:
            raise UserError(f"tapered arch: {len(self.widths)} widths for {self.layers} layers")

    @property
    def name(self) -> str:
        return "-".join(str(w) for w in self.widths)

    def layer_shapes(self) -> list[tuple[int, int]]:
        sizes = [2, *self.widths, self.channels]
        return list(zip(sizes[:-1], sizes[1:]))

    def to_json(self) -> dict:
        return {**super().to_json(), "widths": list(self.widths)}


def widths_of(arch: Arch) -> list[int]:
    """Width of every sine layer."""
    return [fan_out for _, fan_out in arch.layer_shapes()[:-1]]


def arch_bytes(arch: Arch, bytes_per_param: float = FP16_BYTES) -> float:
    """Bytes of one image's weights."""
    return arch.n_params * bytes_per_param


def taper_profile(layers: int, peak: float = 2.0) -> list[float]:
    """Relative widths of a tapered SIREN: 1 at both ends rising linearly to ``peak`` mid-way."""
    if layers < 3:
        return [1.0] * layers
    return [1 + (peak - 1) * (1 - abs(2 * i / (layers - 1) - 1)) for i in range(layers)]


def uniform_for_budget(layers: int, budget_bytes: float, channels: int = 3, w0: float = Arch.w0,
                       bytes_per_param: float = FP16_BYTES) -> Arch | None:
    """The widest uniform ``layers``-deep SIREN within the budget, or None if even width 1 is over."""
    best = None
    for hidden in range(1, 1025):
        arch = Arch(layers, hidden, channels, w0)
        if arch_bytes(arch, bytes_per_param) > budget_bytes:
            break
        best = arch
    return best


def tapered_for_budget(layers: int, budget_bytes: float, channels: int = 3, w0: float = Arch.w0,
                       bytes_per_param: float = FP16_BYTES, peak: float = 2.0) -> TaperedArch | None:
    """The largest tapered SIREN (widths ∝ :func:`taper_profile`) within the budget, or None."""
    profile = taper_profile(layers, peak)
    best = None
    for step in range(1, 4097):  # scale the profile up by quarters of a unit until over budget
        widths = [max(1, round(step / 4 * p)) for p in profile]
        if max(widths) > 1024:
            break
        arch = TaperedArch.of(widths, channels, w0)
        if arch_bytes(arch, bytes_per_param) > budget_bytes:
            if best is not None:
                break
            continue
        best = arch
    return best


def check_budget(arch: Arch, budget_bytes: float, bytes_per_param: float = FP16_BYTES) -> None:
    """A clear error when ``arch`` does not fit the byte budget."""
    need = arch_bytes(arch, bytes_per_param)
    if need > budget_bytes:
        raise UserError(f"architecture {arch.name} needs {need:.0f} bytes per image "
                        f"({arch.n_params} weights x {bytes_per_param:g} B), over the budget of "
                        f"{budget_bytes:.0f} bytes; use fewer layers or a larger budget")


def architectures_for_budget(budget_bytes: float, layers: Iterable[int], channels: int = 3,
                             shapes: Iterable[str] = ("uniform", "tapered"), w0: float = Arch.w0,
                             bytes_per_param: float = FP16_BYTES) -> list[tuple[str, Arch]]:
    """Every (shape, arch) of the given depths that fits the budget.

    Tapered is listed only from 3 layers (with 1 or 2 sine layers it equals uniform).
    """
    shapes = list(shapes)
    for shape in shapes:
        if shape not in ("uniform", "tapered"):
            raise UserError(f"architecture shape must be 'uniform' or 'tapered', got {shape!r}")
    out = []
    for depth in layers:
        if not 1 <= depth <= 64:
            raise UserError(f"layers must be 1..64, got {depth}")
        if "uniform" in shapes:
            arch = uniform_for_budget(depth, budget_bytes, channels, w0, bytes_per_param)
            if arch is not None:
                out.append(("uniform", arch))
        if "tapered" in shapes and depth >= 3:
            arch = tapered_for_budget(depth, budget_bytes, channels, w0, bytes_per_param)
            if arch is not None:
                out.append(("tapered", arch))
    if not out:
        smallest = Arch(1, 1, channels, w0)
        raise UserError(f"a budget of {budget_bytes:.0f} bytes per image holds no SIREN of the asked depths "
                        f"(even {smallest.name} needs {arch_bytes(smallest, bytes_per_param):.0f} bytes)")
    return out


# -- fitting and recording ----------------------------------------------------------------------
@dataclass(frozen=True)
class FitSpec:
    """One fit of the study: an architecture and the fitting settings, with labels for the plot."""

    sweep: str  # which study: "layers", "w0" or "lr"
    arch: Arch
    steps: int
    lr: float
    shape: str = "uniform"  # "uniform" or "tapered"
    budget_bytes: float | None = None  # the byte budget this architecture was sized for
    keep_best: bool = True  # False with max_refits=0 fits like the paper's code
    max_refits: int = 0


def fit_row(images: torch.Tensor, spec: FitSpec, device="cpu", seed: int = 0, fail_below_db: float = 15.0,
            bytes_per_param: float = FP16_BYTES, progress: bool = False) -> dict:
    """Fit ``spec`` to every image of ``images`` (uint8 N×C×H×W) and describe the result as one row."""
    return fit_and_decode(images, spec, device, seed, fail_below_db, bytes_per_param, progress)[0]


def fit_and_decode(images: torch.Tensor, spec: FitSpec, device="cpu", seed: int = 0, fail_below_db: float = 15.0,
                   bytes_per_param: float = FP16_BYTES, progress: bool = False) -> tuple[dict, torch.Tensor]:
    """:func:`fit_row` and the decoded images (N, C, H, W) float on [0, 1] (CPU)."""
    n, c, h, w = images.shape
    arch = dataclasses.replace(spec.arch, channels=c)
    cfg = FitConfig(steps=spec.steps, lr=spec.lr, seed=seed, keep_best=spec.keep_best,
                    max_refits=spec.max_refits)
    start = time.perf_counter()
    result = fit(images, arch, cfg, device=device, progress=progress)
    seconds = time.perf_counter() - start
    decoded = INRSet(result.params, arch, h, w).decode()  # (N, C, H, W) on [0, 1]
    psnr = psnr_of(images, decoded).tolist()  # (N,) the one PSNR, 8-bit rounded
    finite = [p for p in psnr if math.isfinite(p)]
    best_seen = result.train_psnr.tolist()  # (N,) best PSNR during the fit (float output, unrounded)
    collapsed = sum(1 for p, b in zip(psnr, best_seen) if math.isfinite(b) and not (p >= b - COLLAPSE_DB))
    return {
        "sweep": spec.sweep,
        "shape": spec.shape,
        "arch": arch.name,
        "layers": arch.layers,
        "widths": widths_of(arch),
        "w0": arch.w0,
        "params": arch.n_params,
        "bytes_per_image": arch_bytes(arch, bytes_per_param),
        "bytes_per_param": bytes_per_param,
        "budget_bytes": spec.budget_bytes,
        "steps": spec.steps,
        "lr": spec.lr,
        "keep_best": spec.keep_best,
        "images": n,
        "height": h,
        "width": w,
        "psnr": [round(p, 4) for p in psnr],
        "psnr_mean": sum(finite) / len(finite) if finite else None,
        "psnr_min": min(finite) if finite else None,
        "failed": sum(1 for p in psnr if not (p >= fail_below_db)),
        "fail_below_db": fail_below_db,
        "best_seen_psnr": [round(b, 4) for b in best_seen],
        "collapsed": collapsed,
        "refits": result.refits,
        "image_steps": result.image_steps,
        "seconds": round(seconds, 4),
    }, decoded.cpu()


def run_fits(images: torch.Tensor, specs: list[FitSpec], device="cpu", seed: int = 0,
             fail_below_db: float = 15.0, bytes_per_param: float = FP16_BYTES, progress: bool = True,
             on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """Fit every spec in turn (a progress bar over fits); returns one row per fit.

    ``on_row(row)`` is called after each fit (a notebook uses it to redraw as results arrive).
    """
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        raise UserError("search: images must be a uint8 tensor N×C×H×W")
    if images.shape[0] < 1:
        raise UserError("search: no images to fit")
    rows = []
    for spec in tqdm(specs, desc="search", unit="fit", disable=not progress):
        row = fit_row(images, spec, device, seed, fail_below_db, bytes_per_param)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


def _check_positive(name: str, values, integer: bool = False) -> list:
    values = list(values)
    if not values:
        raise UserError(f"{name}: give at least one value")
    for v in values:
        if not (v > 0) or (integer and int(v) != v):
            raise UserError(f"{name}: every value must be a positive {'integer' if integer else 'number'}, got {v!r}")
    return values


def layer_specs(budgets_bytes, layers, steps, lr: float = 1e-3, channels: int = 3, w0: float = Arch.w0,
                shapes=("uniform", "tapered"), bytes_per_param: float = FP16_BYTES) -> list[FitSpec]:
    """Fig. 5a: the widest uniform and tapered SIREN of each depth at each budget, at each step count."""
    _check_positive("budgets", budgets_bytes)
    _check_positive("layers", layers, integer=True)
    _check_positive("steps", steps, integer=True)
    specs = []
    for budget in budgets_bytes:
        for shape, arch in architectures_for_budget(budget, layers, channels, shapes, w0, bytes_per_param):
            specs += [FitSpec("layers", arch, int(s), lr, shape, budget) for s in steps]
    return specs


def w0_specs(w0s, hiddens, layers: int = 3, steps: int = 300, lr: float = 1e-3,
             channels: int = 3) -> list[FitSpec]:
    """Fig. 5b: every (w0, hidden width) pair at a fixed depth."""
    _check_positive("w0", w0s)
    _check_positive("hidden widths", hiddens, integer=True)
    return [FitSpec("w0", Arch(layers, int(h), channels, float(w)), int(steps), lr)
            for h in hiddens for w in w0s]


def lr_specs(lrs, steps, arch: Arch | str = "3x15", channels: int = 3) -> list[FitSpec]:
    """Fig. 5c: every (learning rate, steps) pair, fitted like the paper's code (last weights, no refit)."""
    _check_positive("steps", steps, integer=True)
    for lr in _check_positive("learning rates", lrs):
        if not lr < 1:
            raise UserError(f"learning rates must be in (0, 1), got {lr}")
    arch = Arch.parse(arch, channels) if isinstance(arch, str) else arch
    return [FitSpec("lr", arch, int(s), float(lr), keep_best=False, max_refits=0) for s in steps for lr in lrs]


# -- presets: the quick study (a CPU, seconds) and the full-size one (a GPU, the paper's budgets) --
@dataclass(frozen=True)
class SearchSettings:
    """Everything Fig. 5 varies. ``quick()`` runs in seconds on 2 CPU cores; ``full()`` is paper-sized."""

    images: int = 3  # sample-photo crops fitted in every fit
    size: int = 32  # crop side (pixels)
    budgets_bytes: tuple[float, ...] = (1024.0, 2048.0)  # Fig. 5a budgets per image (paper: 13.5 KB, 29 KB)
    layers: tuple[int, ...] = (2, 4, 8)  # Fig. 5a depths
    layer_steps: tuple[int, ...] = (100, 200)  # Fig. 5a "fewer and more steps"
    w0s: tuple[float, ...] = (5.0, 15.0, 30.0, 60.0)  # Fig. 5b
    hiddens: tuple[int, ...] = (8, 24)  # Fig. 5b widths (3 sine layers)
    w0_steps: int = 150
    lrs: tuple[float, ...] = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)  # Fig. 5c
    lr_steps: tuple[int, ...] = (100, 200)  # Fig. 5c
    lr: float = 3e-3  # learning rate of Figs. 5a and 5b (few steps favour a high rate; paper: 5e-4)
    bytes_per_param: float = FP16_BYTES
    fail_below_db: float = 15.0  # a fit under this PSNR counts as failed (Fig. 5c)
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.images <= 4096:
            raise UserError(f"images must be 1..4096, got {self.images}")
        if not 8 <= self.size <= 128:
            raise UserError(f"size must be 8..128 pixels (crops of the sample photos), got {self.size}")
        _check_positive("budgets", self.budgets_bytes)
        for depth in _check_positive("layers", self.layers, integer=True):
            if depth > 64:
                raise UserError(f"layers must be 1..64, got {depth}")
        _check_positive("steps", [*self.layer_steps, *self.lr_steps, self.w0_steps], integer=True)
        _check_positive("w0", self.w0s)
        _check_positive("hidden widths", self.hiddens, integer=True)
        for lr in _check_positive("learning rates", [*self.lrs, self.lr]):
            if not lr < 1:
                raise UserError(f"learning rates must be in (0, 1), got {lr}")

    @classmethod
    def quick(cls) -> "SearchSettings":
        return cls()

    @classmethod
    def full(cls) -> "SearchSettings":
        """The paper's budgets (13.5 KB, 29 KB at fp16) on 64x64 crops; GPU-sized."""
        return cls(images=64, size=64, budgets_bytes=(13.5 * 1024, 29 * 1024), layers=(2, 3, 4, 6, 8, 10, 12, 14),
                   layer_steps=(2000, 5000), w0s=(5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0),
                   hiddens=(16, 32, 64), w0_steps=2000, lrs=(5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3),
                   lr_steps=(1000, 2000, 5000), lr=5e-4)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def study_images(settings: SearchSettings) -> torch.Tensor:
    """The images every fit of the study uses: crops of scikit-image's photos (offline). uint8 (N, 3, S, S)."""
    if not 1 <= settings.images <= 4096:
        raise UserError(f"images must be 1..4096, got {settings.images}")
    if not 8 <= settings.size <= 128:
        raise UserError(f"size must be 8..128 pixels (crops of the sample photos), got {settings.size}")
    return load_sample_crops(settings.images, (settings.size, settings.size), seed=settings.seed).images


def run_study(which: str, settings: SearchSettings, device="cpu", progress: bool = True,
              on_row=None, images: torch.Tensor | None = None) -> list[dict]:
    """Run one of the three studies ("layers", "w0", "lr") with ``settings``; returns its rows."""
    images = study_images(settings) if images is None else images
    c = images.shape[1]
    s = settings
    if which == "layers":
        specs = layer_specs(s.budgets_bytes, s.layers, s.layer_steps, s.lr, c, bytes_per_param=s.bytes_per_param)
    elif which == "w0":
        specs = w0_specs(s.w0s, s.hiddens, 3, s.w0_steps, s.lr, c)
    elif which == "lr":
        specs = lr_specs(s.lrs, s.lr_steps, Arch(3, 15, c))
    else:
        raise UserError(f"unknown study {which!r}: use layers, w0 or lr")
    rows = run_fits(images, specs, device, s.seed, s.fail_below_db, s.bytes_per_param, progress, on_row)
    return mark_lr_failures(rows) if which == "lr" else rows


def mark_lr_failures(rows: list[dict], drop_db: float = FAIL_DROP_DB) -> list[dict]:
    """Add ``failed_vs_best`` to each lr-study row: its images that, at a rate *above* the rate
    where that image did best (same number of steps), end ``drop_db`` or more under that best.
    Low PSNR at rates below the best is a fit too slow for its steps, not a failure."""
    for steps in {r["steps"] for r in rows if r["sweep"] == "lr"}:
        sel = sorted((r for r in rows if r["sweep"] == "lr" and r["steps"] == steps), key=lambda r: r["lr"])
        per_image = list(zip(*(r["psnr"] for r in sel)))  # per image: PSNR at each rate
        best = [max(vals) for vals in per_image]
        best_lr = [sel[vals.index(max(vals))]["lr"] for vals in per_image]
        for r in sel:
            r["failed_vs_best"] = sum(1 for p, b, lr in zip(r["psnr"], best, best_lr)
                                      if r["lr"] > lr and not (p > b - drop_db))
            r["fail_drop_db"] = drop_db
    return rows


# -- what the rows say, next to the paper's claims ---------------------------------------------------
def summarize(rows: list[dict]) -> list[str]:
    """One line per finding, measured from the rows (for the notebooks and the report)."""
    lines = []
    layer_rows = [r for r in rows if r["sweep"] == "layers"]
    for budget in sorted({r["budget_bytes"] for r in layer_rows}):
        for steps in sorted({r["steps"] for r in layer_rows}):
            sel = [r for r in layer_rows if r["budget_bytes"] == budget and r["steps"] == steps]
            best = max(sel, key=lambda r: r["psnr_mean"])
            uniform = {r["layers"]: r["psnr_mean"] for r in sel if r["shape"] == "uniform"}
            tapered = {r["layers"]: r["psnr_mean"] for r in sel if r["shape"] == "tapered"}
            pairs = [d for d in tapered if d in uniform]
            wins = sum(uniform[d] > tapered[d] for d in pairs)
            lines.append(f"5a budget {budget:.0f} B, {steps} steps: best {best['shape']} {best['arch']} "
                         f"{best['psnr_mean']:.2f} dB at {best['layers']} layers; uniform beats tapered at "
                         f"{wins} of {len(pairs)} depths")
    w0_rows = [r for r in rows if r["sweep"] == "w0"]
    for arch in sorted({r["arch"] for r in w0_rows}, key=lambda a: max(Arch.parse(a).layer_shapes()[1])):
        sel = [r for r in w0_rows if r["arch"] == arch]
        best = max(sel, key=lambda r: r["psnr_mean"])
        lines.append(f"5b {arch}: best w0 = {best['w0']:g} ({best['psnr_mean']:.2f} dB)")
    lr_rows = [r for r in rows if r["sweep"] == "lr"]
    for steps in sorted({r["steps"] for r in lr_rows}):
        sel = sorted((r for r in lr_rows if r["steps"] == steps), key=lambda r: r["lr"])
        best = max(sel, key=lambda r: r["psnr_mean"])
        bad = [f"{r['lr']:g} ({r.get('failed_vs_best', 0)}/{r['images']} {r.get('fail_drop_db', FAIL_DROP_DB):g} dB "
               f"under their best, {r['collapsed']} collapsed)" for r in sel if r.get("failed_vs_best") or r["collapsed"]]
        lines.append(f"5c {steps} steps: best lr = {best['lr']:g} ({best['psnr_mean']:.2f} dB); "
                     f"fits failing at: {', '.join(bad) or 'none'}")
    return lines


# -- results files ------------------------------------------------------------------------------
def save_results(path: str | Path, name: str, rows: list[dict], settings: dict, description: str = "") -> Path:
    """Write the study's rows as a results document (:mod:`rapidinr.core.results`), atomically."""
    return write_results(path, results_document(name, description, settings, rows))


def load_results(path: str | Path) -> dict:
    """Read a results file written by :func:`save_results`; a clear error when missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such results file (run the study first, or use the quick settings)")
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: not a readable results JSON ({err})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise UserError(f"{path}: results JSON without a 'results' list")
    return doc
