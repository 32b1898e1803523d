"""ipywidgets UIs for the notebooks. The core library never imports this module.

Every UI is an :class:`InteractiveFigure`: a dict of controls, a pure ``render(**values)``
that returns a matplotlib ``Figure`` (or raises :class:`~rapidinr.core.errors.UserError`), and an
``Output`` the figure is shown in. Moving a control calls :meth:`InteractiveFigure.update`,
which any test can also call directly, without a browser or a kernel: the last figure and the
last error are kept on the object. A bad request (say, an architecture over the byte budget)
shows one red line under the controls instead of a traceback.

Figures are shown as PNG images, so they look the same under any matplotlib backend; long work
(fits) shows tqdm's notebook progress bar inside the UI's output.
"""
from __future__ import annotations

import html
from typing import Callable

import ipywidgets as W
import torch
from IPython.display import Image, display

from rapidinr.codec.inrset import INRSet
from rapidinr.codec.measure import measure_weights
from rapidinr.codec.prune import PruneConfig, l1_mask, parse_schedule, weight_sparsity
from rapidinr.codec.store import PackedStore
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.errors import UserError
from rapidinr.core.metrics import psnr
from rapidinr.core.siren import layer_kinds, layer_views
from rapidinr.encoding.compress import retrain
from rapidinr.encoding.fit import fit
from rapidinr.study import baselines, search
from rapidinr.study.figures import figure_bytes
from rapidinr.study.figures.rate_distortion import plot_rd
from rapidinr.study.figures.residuals import plot_residuals, residual_data
from rapidinr.study.figures.search import PLOTS
from rapidinr.study.figures.training import pipeline_rows, pipeline_table, plot_accuracy_vs_bytes, plot_pipeline_times

__all__ = ["BudgetExplorer", "InteractiveFigure", "check_parameter", "show", "show_errors_plainly", "decode_explorer", "budget_explorer",
           "study_explorer", "fit_study", "RDExplorer", "rd_explorer", "weight_bytes", "layer_names",
           "weights_explorer", "residual_explorer", "accuracy_explorer", "pipelines_explorer", "render_accuracy",
           "render_pipelines", "render_fit_candidates", "render_init_race", "init_race_explorer"]


def show(fig) -> None:
    """Display a matplotlib Figure as a PNG (works the same in any notebook front end)."""
    display(Image(data=figure_bytes(fig, "png")))


def show_errors_plainly() -> bool:
    """In IPython, print a :class:`UserError` as one red line instead of a traceback.

    A notebook parameter out of range then reads ``rapidinr: error: ...`` and execution stops
    there, as it should. Returns False outside IPython.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False

    def handler(shell, etype, value, tb, tb_offset=None):
        # IPython discards what a custom handler returns from run_code; show the one line ourselves
        # (in a kernel this is an "error" output, so Run All still stops at this cell).
        shell._showtraceback(etype, value, [f"\x1b[31mrapidinr: error: {value}\x1b[0m"])

    shell.set_custom_exc((UserError,), handler)
    return True


def check_parameter(name: str, value, low, high) -> None:
    """A notebook parameter outside [low, high] is one clear error (shown plainly, see above)."""
    try:
        ok = low <= value <= high
    except TypeError:
        ok = False
    if not ok:
        raise UserError(f"parameter {name} = {value!r} is out of range: use {low}..{high}")


class InteractiveFigure:
    """Controls + a figure that follows them.

    controls: name -> ipywidget with a ``.value``; render(**values) -> matplotlib Figure.
    ``continuous=False`` redraws only when a control is released or a button is pressed.
    """

    def __init__(self, controls: dict, render: Callable, title: str = "", auto: bool = True):
        self.controls = dict(controls)
        self.render = render
        self.output = W.Output()
        self.status = W.HTML()
        self.last_figure = None
        self.last_error: str | None = None
        self.renders = 0
        header = [W.HTML(f"<b>{html.escape(title)}</b>")] if title else []
        self.widget = W.VBox(header + [W.HBox(list(self.controls.values()), layout=W.Layout(flex_flow="row wrap")),
                                       self.status, self.output])
        if auto:
            for control in self.controls.values():
                if hasattr(control, "value"):
                    control.observe(lambda change: self.update(), names="value")

    def values(self) -> dict:
        return {name: c.value for name, c in self.controls.items() if hasattr(c, "value")}

    def update(self, **overrides):
        """Redraw from the controls' values (``overrides`` replace some); returns the Figure or None."""
        values = {**self.values(), **overrides}
        self.output.clear_output(wait=True)
        try:
            with self.output:
                fig = self.render(**values)
                if fig is not None:
                    show(fig)
        except UserError as err:
            self.last_error = str(err)
            self.last_figure = None
            self.status.value = f"<span style='color:#b00'>rapidinr: {html.escape(str(err))}</span>"
            return None
        self.last_error = None
        self.last_figure = fig
        self.renders += 1
        self.status.value = ""
        return fig

    def _ipython_display_(self):
        if self.renders == 0 and self.last_error is None:
            self.update()
        display(self.widget)


# -- 00_walkthrough: one image, its INR, decoded at any scale -------------------------------------
def render_decode(inrs, images: torch.Tensor | None, index: int, scale: int):
    """Original (when given), the INR's decode at its size, and at ``scale``× (continuous SIREN)."""
    from matplotlib.figure import Figure

    if not 0 <= index < len(inrs):
        raise UserError(f"image index must be 0..{len(inrs) - 1}, got {index}")
    if not 1 <= scale <= 16:
        raise UserError(f"decode scale must be 1..16, got {scale}")
    native = inrs.decode([index]).cpu()  # (1, C, H, W)
    big = inrs.decode([index], size=(inrs.height * scale, inrs.width * scale)).cpu()  # (1, C, sH, sW)
    panels = []
    if images is not None:
        panels.append(("original", images[index : index + 1].float() / 255))
    quality = f", {float(psnr(images[index : index + 1], native)[0]):.2f} dB" if images is not None else ""
    panels += [(f"INR at 1x ({inrs.height}x{inrs.width}{quality})", native),
               (f"INR at {scale}x ({inrs.height * scale}x{inrs.width * scale})", big)]
    fig = Figure(figsize=(3.2 * len(panels), 3.4))
    axes = fig.subplots(1, len(panels))
    gray = inrs.channels == 1
    for ax, (name, image) in zip(axes, panels):
        array = image[0, 0] if gray else image[0].permute(1, 2, 0)
        ax.imshow(array.clamp(0, 1).numpy(), cmap="gray" if gray else None, vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    label = ""
    if inrs.labels is not None and inrs.class_names:
        label = f" ({inrs.class_names[int(inrs.labels[index])]})"
    fig.suptitle(f"image {index}{label}: one {inrs.arch.name} SIREN, {inrs.arch.n_params} weights")
    return fig


def decode_explorer(inrs, images: torch.Tensor | None = None) -> InteractiveFigure:
    """Pick an image and a decode scale; shows original, INR decode at 1× and at the scale."""
    controls = {
        "index": W.IntSlider(value=0, min=0, max=max(len(inrs) - 1, 0), description="image",
                             continuous_update=False),
        "scale": W.Dropdown(options=[1, 2, 4, 8], value=4, description="decode at"),
    }
    return InteractiveFigure(controls, lambda index, scale: render_decode(inrs, images, index, scale),
                             "An image and its INR")


# -- 03_architecture_search: what fits a byte budget -------------------------------------------
def arch_for_budget(budget_bytes: float, layers: int, hidden: int, shape: str, channels: int = 3,
                    bytes_per_param: float = 2.0):
    """The SIREN the budget explorer means: ``hidden`` 0 = as wide as the budget allows."""
    if budget_bytes <= 0:
        raise UserError(f"budget must be positive, got {budget_bytes}")
    if shape == "tapered" and hidden:
        raise UserError("a tapered architecture is always sized to the budget: set width to 0 (auto)")
    if hidden:
        arch = Arch(layers, hidden, channels)
        search.check_budget(arch, budget_bytes, bytes_per_param)
        return arch
    found = search.architectures_for_budget(budget_bytes, [layers], channels, [shape], bytes_per_param=bytes_per_param)
    if not found:
        raise UserError(f"no {shape} architecture with {layers} layers fits {budget_bytes:.0f} bytes")
    return found[0][1]


def render_budget(budget_bytes: float, layers: int, hidden: int, shape: str, channels: int = 3,
                  bytes_per_param: float = 2.0):
    """Bar chart of the layer widths of :func:`arch_for_budget`'s SIREN, and how much budget it uses."""
    from matplotlib.figure import Figure

    arch = arch_for_budget(budget_bytes, layers, hidden, shape, channels, bytes_per_param)
    widths = search.widths_of(arch)
    fig = Figure(figsize=(6, 3.2))
    ax = fig.subplots()
    ax.bar(range(1, len(widths) + 1), widths, color="tab:orange" if shape == "tapered" else "tab:blue")
    ax.set_xlabel("sine layer")
    ax.set_ylabel("width (neurons)")
    used = search.arch_bytes(arch, bytes_per_param)
    ax.set_title(f"{arch.name}: {arch.n_params} weights = {used:.0f} B of {budget_bytes:.0f} B "
                 f"({100 * used / budget_bytes:.0f}%)", fontsize=10)
    ax.set_xticks(range(1, len(widths) + 1))
    return fig


def render_fit(images: torch.Tensor, decoded: torch.Tensor, row: dict):
    """Originals above, their INR decodes below, each decode's PSNR in its title."""
    from matplotlib.figure import Figure

    n = min(len(images), 6)
    fig = Figure(figsize=(1.9 * n, 4.2))
    axes = fig.subplots(2, n, squeeze=False)
    for i in range(n):
        for ax, image, title in ((axes[0][i], images[i].float() / 255, "original"),
                                 (axes[1][i], decoded[i], f"{row['psnr'][i]:.1f} dB")):
            gray = image.shape[0] == 1
            ax.imshow((image[0] if gray else image.permute(1, 2, 0)).clamp(0, 1).numpy(),
                      cmap="gray" if gray else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.suptitle(f"{row['arch']} ({row['shape']}), {row['steps']} steps at lr {row['lr']:g}: "
                 f"mean {row['psnr_mean']:.2f} dB, {row['bytes_per_image']:.0f} B per image", fontsize=10)
    return fig


class BudgetExplorer(InteractiveFigure):
    """Budget, depth, shape, width → the layer widths that fit; with ``images``, a button fits that
    SIREN to them (a progress bar in the output) and shows originals against decodes."""

    def __init__(self, channels: int = 3, budget_bytes: float = 2048, bytes_per_param: float = 2.0,
                 images: torch.Tensor | None = None, steps: int = 150, lr: float = 3e-3, device="cpu"):
        if images is not None:
            channels = images.shape[1]
        self.images, self.steps, self.lr, self.device = images, steps, lr, device
        self.channels, self.bytes_per_param = channels, bytes_per_param
        self.last_fit: dict | None = None
        controls = {
            "budget_bytes": W.IntSlider(value=int(budget_bytes), min=256, max=64 * 1024, step=256,
                                        description="budget (B)", continuous_update=False),
            "layers": W.IntSlider(value=4, min=1, max=16, description="layers", continuous_update=False),
            "hidden": W.IntSlider(value=0, min=0, max=256, description="width (0=auto)", continuous_update=False),
            "shape": W.ToggleButtons(options=["uniform", "tapered"], value="uniform"),
        }
        super().__init__(controls, lambda **v: render_budget(channels=channels, bytes_per_param=bytes_per_param, **v),
                         "What fits a byte budget")
        if images is not None:
            self.button = W.Button(description=f"fit {len(images)} images", icon="play")
            self.button.on_click(lambda _: self.fit())
            self.widget.children = (*self.widget.children[:2], self.button, *self.widget.children[2:])

    def fit(self):
        """Fit the current architecture to the images; returns the figure (or None on a bad request)."""
        if self.images is None:
            raise UserError("this explorer was made without images to fit")
        values = self.values()
        try:
            arch = arch_for_budget(channels=self.channels, bytes_per_param=self.bytes_per_param, **values)
        except UserError as err:
            self.last_error = str(err)
            self.status.value = f"<span style='color:#b00'>rapidinr: {html.escape(str(err))}</span>"
            return None
        spec = search.FitSpec("widget", arch, self.steps, self.lr, values["shape"], values["budget_bytes"])
        self.output.clear_output(wait=True)
        with self.output:
            row, decoded = search.fit_and_decode(self.images, spec, self.device, progress=True,
                                                 bytes_per_param=self.bytes_per_param)
            fig = render_fit(self.images, decoded, row)
            self.output.clear_output(wait=True)
            show(fig)
        self.last_fit, self.last_figure = row, fig
        return fig


def budget_explorer(channels: int = 3, budget_bytes: float = 2048, bytes_per_param: float = 2.0,
                    images: torch.Tensor | None = None, steps: int = 150, lr: float = 3e-3,
                    device="cpu") -> BudgetExplorer:
    """Byte budget, depth, shape and an optional manual width → the layer widths that fit; with
    ``images``, a "fit" button fits the chosen SIREN to them with a progress bar."""
    return BudgetExplorer(channels, budget_bytes, bytes_per_param, images, steps, lr, device)


def study_explorer(rows_by_study: dict[str, list[dict]]) -> InteractiveFigure:
    """Switch between the Fig. 5 panels of finished studies, optionally keeping one step count."""
    studies = [s for s in ("layers", "w0", "lr") if rows_by_study.get(s)]
    if not studies:
        raise UserError("no study results to show: run a study first")
    steps = sorted({r["steps"] for rows in rows_by_study.values() for r in rows})

    def render(study: str, steps_shown: str):
        rows = rows_by_study[study]
        if steps_shown != "all":
            rows = [r for r in rows if str(r["steps"]) == steps_shown]
            if not rows:
                raise UserError(f"the {study} study has no fits with {steps_shown} steps")
        return PLOTS[study](rows)

    controls = {"study": W.Dropdown(options=studies, value=studies[0], description="study"),
                "steps_shown": W.Dropdown(options=["all"] + [str(s) for s in steps], value="all",
                                          description="steps")}
    return InteractiveFigure(controls, render, "Fig. 5 panels")


def fit_study(which: str, settings, device="cpu") -> list[dict]:
    """Run one study with a notebook progress bar over its fits (tqdm picks the widget form)."""
    return search.run_study(which, settings, device=device, progress=True)


# -- 01_rate_distortion: one INR variant against JPEG (Fig. 3) ---------------------------------------
class RDExplorer(InteractiveFigure):
    """Architecture, hidden-layer bits, pruning schedule, JPEG quality → one INR point and one JPEG
    point, drawn over a finished sweep (``background``, a ``rapidinr.study.rd.sweep`` result).

    Fits are cached per architecture and pruned weights per (architecture, schedule), so moving the
    bits or the JPEG quality redraws at once. ``budget_bytes`` is the most bytes per image an
    architecture may need at the chosen bits (its weights alone); a bigger one is refused plainly.
    """

    def __init__(self, images: torch.Tensor, background: dict | None = None, arch: str = "3x15", steps: int = 200,
                 lr: float = 3e-3, retrain_steps: int = 60, budget_bytes: float = 4096, device="cpu",
                 auto: bool = True, progress: bool = True):
        self.images, self.background, self.steps, self.lr = images, background, steps, lr
        self.progress = progress
        self.retrain_steps, self.budget_bytes, self.device = retrain_steps, budget_bytes, device
        self._fits: dict = {}
        self._pruned: dict = {}
        self.last_point: dict | None = None
        controls = {
            "arch": W.Text(value=arch, description="SIREN", continuous_update=False),
            "bits": W.Dropdown(options=[32, 16, 8], value=8, description="hidden bits"),
            "layers": W.ToggleButtons(options=["hidden", "all"], value="hidden", description="quantize"),
            "schedule": W.Text(value="20:0.1,28:0.3", description="prune", continuous_update=False,
                               placeholder="none, cifar10 or PSNR:RATIO,..."),
            "quality": W.IntSlider(value=50, min=1, max=100, description="JPEG q", continuous_update=False),
        }
        super().__init__(controls, self.render_point, "One INR variant against JPEG", auto=auto)

    def _fit(self, arch):
        if arch.name not in self._fits:
            cfg = FitConfig(steps=self.steps, lr=self.lr)
            params = fit(self.images, arch, cfg, device=self.device, progress=self.progress).params.cpu()
            self._fits[arch.name] = (params, measure_weights(params, arch, self.images, self.device))
        return self._fits[arch.name]

    def _prune(self, arch, schedule_text: str):
        params, psnr = self._fit(arch)
        if schedule_text.strip().lower() in ("", "none", "0"):
            return params
        key = (arch.name, schedule_text)
        if key not in self._pruned:
            schedule = parse_schedule(schedule_text)
            prune = PruneConfig(schedule=schedule, retrain_steps=self.retrain_steps, retrain_lr=self.lr / 3)
            mask = l1_mask(params, arch, schedule.ratio(psnr))
            self._pruned[key] = retrain(self.images, params, mask, arch, FitConfig(steps=self.steps, lr=self.lr),
                                        prune, self.device, self.progress).cpu()
        return self._pruned[key]

    def point(self, arch: str, bits: int, layers: str, schedule: str, quality: int) -> dict:
        """Bytes per image (real .rinr size) and mean PSNR of the INR variant and of JPEG at ``quality``."""
        if not 1 <= quality <= 100:
            raise UserError(f"JPEG quality must be 1..100, got {quality}")
        if bits not in (8, 16, 32):
            raise UserError(f"bits must be 8, 16 or 32, got {bits}")
        a = Arch.parse(arch, self.images.shape[1])
        need = weight_bytes(a, bits, layers)
        if need > self.budget_bytes:
            raise UserError(f"architecture {a.name} needs {need:.0f} bytes per image at {bits}-bit {layers} layers "
                            f"(before pruning), over the budget of {self.budget_bytes:.0f} bytes; use a smaller "
                            "SIREN or fewer bits")
        params = self._prune(a, schedule)
        store = PackedStore.from_params(params, a, bits, layers if bits < 32 else "hidden")
        n, _, h, w = self.images.shape
        inrs = INRSet(store, a, h, w)
        psnr = measure_weights(inrs.params.cpu(), a, self.images, self.device)
        info = inrs.info()
        jpg = baselines.jpeg(self.images, quality)
        return {"arch": a.name, "bits": bits, "layers": layers, "schedule": schedule,
                "sparsity": float(weight_sparsity(params, a).mean()),
                "inr_bytes": info["bytes_per_image"], "inr_psnr": float(psnr.mean()),
                "inr_bpp": 8 * info["bytes_per_image"] / (h * w),
                "jpeg_quality": quality, "jpeg_bytes": float(jpg.bytes.double().mean()),
                "jpeg_psnr": float(jpg.psnr.mean()), "jpeg_bpp": 8 * float(jpg.bytes.double().mean()) / (h * w)}

    def render_point(self, arch, bits, layers, schedule, quality):
        from matplotlib.figure import Figure

        p = self.point(arch, bits, layers, schedule, quality)
        self.last_point = p
        fig = Figure(figsize=(6.8, 4.6))
        ax = fig.add_subplot()
        if self.background is not None:
            names = [n for n in self.background["results"]
                     if "unpruned" not in n and "zstd" not in n and "biases" not in n and "standard" not in n]
            plot_rd(self.background, "bytes", names, ax=ax)
            for line in ax.get_lines():
                line.set_alpha(0.35)
        ax.scatter([p["inr_bytes"]], [p["inr_psnr"]], s=140, marker="*", color="crimson", zorder=5,
                   label=f"your INR: {p['arch']}, {bits}-bit {layers if bits < 32 else ''}, "
                         f"{100 * p['sparsity']:.0f}% pruned")
        ax.scatter([p["jpeg_bytes"]], [p["jpeg_psnr"]], s=110, marker="P", color="black", zorder=5,
                   label=f"your JPEG: quality {quality}")
        ax.set_xlabel("bytes per image (real file sizes)")
        ax.set_ylabel("PSNR (dB, mean over images)")
        ax.set_title(f"INR {p['inr_bytes']:.0f} B ({p['inr_bpp']:.2f} bpp), {p['inr_psnr']:.2f} dB | "
                     f"JPEG {p['jpeg_bytes']:.0f} B ({p['jpeg_bpp']:.2f} bpp), {p['jpeg_psnr']:.2f} dB", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        return fig


def weight_bytes(arch, bits: int, layers: str = "hidden") -> float:
    """Bytes of one image's weights with the ``layers`` (hidden or all) at ``bits``, the rest float32
    (no pruning, no header): what the explorer's byte budget is checked against."""
    kinds = layer_kinds(arch)  # (P,) 0 first, 1 hidden, 2 last
    quantized = int((kinds == 1).sum()) if layers == "hidden" else arch.n_params
    return quantized * bits / 8 + (arch.n_params - quantized) * 4


def rd_explorer(images: torch.Tensor, background: dict | None = None, **kwargs) -> RDExplorer:
    """Widgets for architecture, bits, pruning schedule and JPEG quality over a Fig. 3 sweep."""
    return RDExplorer(images, background, **kwargs)


# -- 02_weight_distributions: histograms per layer and image (Fig. 4) ------------------------------
def layer_names(arch) -> list[str]:
    """One name per weight matrix: ``layer 1 (first)``, ``layer 2 (hidden)``, ..., ``layer L+1 (last)``."""
    n = arch.layers + 1
    return [f"layer {i + 1} ({'first' if i == 0 else 'last' if i == n - 1 else 'hidden'})" for i in range(n)]


def render_weight_layers(params: torch.Tensor, arch, layers, first: int, last: int, normalize: bool = True,
                         bins: int = 61):
    """Histogram of the weights of the chosen layers (names from :func:`layer_names`) over images
    ``first..last`` (inclusive); each image's layer divided by its largest magnitude when normalizing."""
    from matplotlib.figure import Figure

    names = layer_names(arch)
    layers = list(layers)
    if not layers:
        raise UserError("pick at least one layer")
    unknown = [name for name in layers if name not in names]
    if unknown:
        raise UserError(f"unknown layer {unknown[0]!r}; this {arch.name} SIREN has {', '.join(names)}")
    if not 0 <= first <= last < len(params):
        raise UserError(f"images must be a range within 0..{len(params) - 1}, got {first}..{last}")
    views = layer_views(params[first : last + 1].float().cpu(), arch)
    fig = Figure(figsize=(3.1 * len(layers), 3.0))
    axes = fig.subplots(1, len(layers), squeeze=False)[0]
    for ax, name in zip(axes, layers):
        w = views[names.index(name)][0]
        flat = w.reshape(w.shape[0], -1)  # (B, in*out)
        if normalize:
            flat = flat / flat.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
        values = flat[flat != 0].numpy()
        ax.hist(values, bins=bins, range=(-1, 1) if normalize else None, density=True, alpha=0.75,
                color="tab:green" if "hidden" in name else "tab:blue")
        ax.set_title(f"{name}\n{values.size} weights, {100 * (abs(values) < 0.1).mean():.0f}% within ±0.1",
                     fontsize=8)
        ax.set_xlabel("normalized weight" if normalize else "weight")
    axes[0].set_ylabel("density")
    fig.suptitle(f"images {first}..{last} of {len(params)}, {arch.name} SIREN", fontsize=9)
    fig.tight_layout()
    return fig


def weights_explorer(params: torch.Tensor, arch) -> InteractiveFigure:
    """Pick layers (several with ctrl/shift) and a range of images; shows their weight histograms."""
    names = layer_names(arch)
    n = len(params)
    controls = {
        "layers": W.SelectMultiple(options=names, value=tuple(dict.fromkeys((names[0], names[1], names[-1]))),
                                   description="layers",
                                   rows=min(len(names), 6)),
        "images": W.IntRangeSlider(value=(0, n - 1), min=0, max=max(n - 1, 0), description="images",
                                   continuous_update=False),
        "normalize": W.Checkbox(value=True, description="normalize per image"),
    }

    def render(layers, images, normalize):
        return render_weight_layers(params, arch, layers, images[0], images[1], normalize)

    return InteractiveFigure(controls, render, "Weight histograms per layer")


# -- 04_residuals: one image, INR against JPEG at the same bytes (Fig. 6) ---------------------------
def render_residuals(images: torch.Tensor, inrs, index: int, gain: float = 4.0, factor: int = 2):
    """:func:`rapidinr.study.figures.residuals.residual_data` + ``plot_residuals`` for one image."""
    if not 0 <= index < len(inrs):
        raise UserError(f"image index must be 0..{len(inrs) - 1}, got {index}")
    if not 1 <= gain <= 32:
        raise UserError(f"residual gain must be 1..32, got {gain}")
    if factor not in (2, 4, 8):
        raise UserError(f"downsampling factor must be 2, 4 or 8, got {factor}")
    data = residual_data(images, inrs, index, factors=(factor,))
    return plot_residuals(data, gain=gain, title=f"image {index}: INR, JPEG and JPEG ×{factor} at "
                          f"{inrs.info()['bytes_per_image']:.0f} B per image")


def residual_explorer(images: torch.Tensor, inrs) -> InteractiveFigure:
    """Pick an image, a residual gain and a downsampling factor."""
    controls = {
        "index": W.IntSlider(value=0, min=0, max=max(len(inrs) - 1, 0), description="image",
                             continuous_update=False),
        "gain": W.Dropdown(options=[1.0, 2.0, 4.0, 8.0], value=4.0, description="residual ×"),
        "factor": W.Dropdown(options=[2, 4], value=2, description="downsample"),
    }
    return InteractiveFigure(controls, lambda index, gain, factor: render_residuals(images, inrs, index, gain, factor),
                             "Residuals at the same bytes per image")


# -- 05_accuracy / 06_training_time: switch between results documents (Figs. 7, 8) -------------------
def render_accuracy(doc: dict, kinds=("inr", "jpeg", "original")):
    """Fig. 7 from a results document, keeping only the variant kinds chosen."""
    from matplotlib.figure import Figure

    kinds = list(kinds)
    if not kinds:
        raise UserError("pick at least one kind of variant")
    variants = [v for v in doc["results"]["variants"] if v["kind"] in kinds]
    if not variants:
        raise UserError(f"no {', '.join(kinds)} variants in this results file")
    fig = Figure(figsize=(7, 4.6))
    ax = fig.add_subplot()
    plot_accuracy_vs_bytes({"results": {"variants": variants}}, ax=ax)
    ax.margins(x=0.25, y=0.2)
    return fig


def render_pipelines(doc: dict, data: str = "all", per_epoch: bool = True):
    """Fig. 8 from a results document (either shape), one dataset or all."""
    from matplotlib.figure import Figure

    doc = pipeline_rows(doc)
    table = pipeline_table(doc)
    if data != "all":
        if data not in table:
            raise UserError(f"no rows for {data!r}; this file has {', '.join(table) or 'none'}")
        doc = {"results": {"rows": [r for r in doc["results"]["rows"] if r["data"] == data]}}
        table = {data: table[data]}
    if not table:
        raise UserError("this results file holds no pipeline rows")
    fig = Figure(figsize=(4.5 * len(table), 4.0))
    axes = fig.subplots(1, len(table), squeeze=False)[0]
    plot_pipeline_times(doc, axes=axes, per_epoch=per_epoch)
    fig.tight_layout()
    return fig


def accuracy_explorer(docs: dict[str, dict]) -> InteractiveFigure:
    """Switch between Fig. 7 results documents (e.g. live grid, committed CPU run) and variant kinds."""
    if not docs:
        raise UserError("no accuracy results to show")
    controls = {"source": W.Dropdown(options=list(docs), value=list(docs)[0], description="results"),
                "kinds": W.SelectMultiple(options=["inr", "jpeg", "original"], value=("inr", "jpeg", "original"),
                                          description="show", rows=3)}
    return InteractiveFigure(controls, lambda source, kinds: render_accuracy(docs[source], kinds), "Fig. 7")


def pipelines_explorer(docs: dict[str, dict]) -> InteractiveFigure:
    """Switch between Fig. 8 results documents, one dataset or all, total or per-epoch time."""
    if not docs:
        raise UserError("no pipeline results to show")
    sets = sorted({r["data"] for d in docs.values() for r in pipeline_rows(d)["results"]["rows"]})
    controls = {"source": W.Dropdown(options=list(docs), value=list(docs)[0], description="results"),
                "data": W.Dropdown(options=["all"] + sets, value="all", description="data"),
                "per_epoch": W.Checkbox(value=True, description="per epoch")}
    return InteractiveFigure(controls, lambda source, data, per_epoch: render_pipelines(docs[source], data, per_epoch),
                             "Fig. 8")


# -- 07_learned_init: random against learned init, step by step -----------------------------------
def render_fit_candidates(fit_info: dict):
    """The (lr, steps) candidates ``meta-init`` measured on held-out images (``info.fit`` of a
    learned init): median steps to the random init's PSNR against the schedule length, one line per
    rate; the chosen pair circled. Candidates that left most images short of it are not drawn."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for lr in sorted({c["lr"] for c in fit_info["candidates"]}):
        points = [(c["steps"], c["median_steps"]) for c in fit_info["candidates"]
                  if c["lr"] == lr and c["median_steps"] is not None]
        if points:
            ax.plot(*zip(*points), "o-", label=f"lr {lr:g}")
    ax.plot([fit_info["steps"]], [fit_info["median_steps_to_reference"]], "o", ms=14, mfc="none", mec="k",
            label="chosen")
    ref = fit_info["reference"]
    ax.axhline(ref["steps"] / 10, color="0.5", ls=":", label=f"10x fewer than {ref['steps']}")
    ax.set(xlabel="schedule length (steps)", ylabel="median steps to random's PSNR",
           title=f"fit settings chosen on {fit_info['validation_images']} held-out images")
    ax.legend(fontsize=8)
    return fig


def render_init_race(traces: dict[str, dict], targets: torch.Tensor, index: int | None = None):
    """Training PSNR against step for each fit in ``traces`` (name -> {image: {step: PSNR}}), with
    each image's target (the random init's PSNR after its full schedule) as a dotted line: the mean
    over images when ``index`` is None, else image ``index`` alone."""
    from matplotlib.figure import Figure

    n = len(targets)
    if index is not None and not 0 <= index < n:
        raise UserError(f"image index must be 0..{n - 1}, got {index}")
    rows = range(n) if index is None else [index]
    fig = Figure(figsize=(6.5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for name, trace in traces.items():
        steps = sorted(set().union(*(trace.get(i, {}) for i in rows)))
        # an image that left the batch early (it diverged and was refitted) keeps its last PSNR
        per_image = [_carried_forward(trace.get(i, {}), steps) for i in rows]  # rows x steps
        ax.plot(steps, [sum(col) / len(rows) for col in zip(*per_image)], label=name)
    target = float(targets[list(rows)].mean())
    ax.axhline(target, color="k", ls=":", label=f"target {target:.2f} dB")
    ax.set(xscale="log", xlabel="Adam step", ylabel="training PSNR (dB)",
           title="mean of every image" if index is None else f"image {index}")
    ax.legend(fontsize=8)
    return fig


def _carried_forward(trace_i: dict[int, float], steps: list[int]) -> list[float]:
    """trace_i's value at each of ``steps``: the value at the latest traced step at or before it."""
    out, last, known = [], float("nan"), sorted(trace_i.items())
    for step in steps:
        while known and known[0][0] <= step:
            last = known.pop(0)[1]
        out.append(last)
    return out


def init_race_explorer(traces: dict[str, dict], targets: torch.Tensor) -> InteractiveFigure:
    """Step through the images one by one, or see their mean (index -1)."""
    controls = {"index": W.IntSlider(value=-1, min=-1, max=len(targets) - 1, description="image",
                                     continuous_update=False)}
    return InteractiveFigure(controls, lambda index: render_init_race(traces, targets, None if index < 0 else index),
                             "Random against learned init (image -1: the mean)")
