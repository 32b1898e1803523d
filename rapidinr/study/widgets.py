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
import re
from pathlib import Path
from typing import Callable

import ipywidgets as W
import torch
from IPython.display import Image, display

from rapidinr.codec.inrset import INRSet
from rapidinr.codec.measure import measure_weights
from rapidinr.codec.prune import PruneConfig, l1_mask, parse_schedule, weight_sparsity
from rapidinr.codec.store import PackedStore
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.devices import resolve_device
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
from rapidinr.study.figures.training import (
    NOTE_RECT,
    pipeline_figure,
    pipeline_rows,
    pipeline_table,
    plot_accuracy_vs_bytes,
    plot_pipeline_times,
)

__all__ = ["BudgetExplorer", "InteractiveFigure", "check_parameter", "check_choice", "check_device", "check_folder", "check_data",
           "show", "show_errors_plainly", "decode_explorer", "budget_explorer",
           "study_explorer", "fit_study", "RDExplorer", "rd_explorer", "weight_bytes", "layer_names",
           "weights_explorer", "residual_explorer", "accuracy_explorer", "pipelines_explorer", "render_accuracy",
           "render_pipelines", "render_fit_candidates", "render_init_race", "init_race_explorer"]

# The library's messages name command-line options; in a notebook the reader set a parameter.
NOTEBOOK_NAMES = {"--arch": "ARCH", "--device": "DEVICE", "--steps": "STEPS", "--lr": "LR",
                  "--dynamic-prune": "SCHEDULE", "--batch-size": "BATCH_SIZE", "--retrain-steps": "RETRAIN_STEPS",
                  "--retrain-lr": "LR", "--size": "SIZE"}


def plain_message(message: str, names: dict[str, str] | None = None) -> str:
    """``message`` with each command-line option replaced by the name the reader knows it by
    (a notebook parameter by default, a control's label in a widget)."""
    for flag, name in sorted((names or NOTEBOOK_NAMES).items(), key=lambda item: -len(item[0])):
        message = re.sub(rf"{re.escape(flag)}(?![\w-])", name, message)
    return message


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
        shell._showtraceback(etype, value, [f"\x1b[31mrapidinr: error: {plain_message(str(value))}\x1b[0m"])

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


def check_choice(name: str, value, choices) -> None:
    """A notebook parameter that must be one of ``choices`` (say, what a dropdown offers)."""
    if value not in tuple(choices):
        raise UserError(f"parameter {name} = {value!r} is not offered: use one of {', '.join(map(repr, choices))}")


def check_device(value, name: str = "DEVICE") -> None:
    """The one device check of every notebook: ``cpu``, or ``cuda`` where a GPU is present."""
    try:
        resolve_device(value)
    except UserError:
        if isinstance(value, str) and value.startswith("cuda"):
            raise UserError(f"parameter {name} = {value!r}: CUDA is not available on this machine "
                            f"(set {name} = \"cpu\")") from None
        raise UserError(f"parameter {name} = {value!r} is not a device: use \"cpu\" or \"cuda\"") from None


def check_folder(name: str, value) -> None:
    """A notebook parameter naming a folder that must exist."""
    if value is not None and not Path(value).is_dir():
        raise UserError(f"parameter {name} = {str(value)!r}: no such folder")


def check_data(name: str, value) -> None:
    """A notebook's dataset parameter: ``default``, a named SOURCE such as ``cifar10:ROOT``, or a
    folder that exists (checked here, so a typo reads as one line naming the parameter)."""
    if not isinstance(value, str) or not value:
        raise UserError(f"parameter {name} = {value!r}: use \"default\", a folder of images or cifar10:ROOT")
    if value != "default" and ":" not in value and not Path(value).is_dir():
        raise UserError(f"parameter {name} = {value!r}: no such folder")


def refusal_html(message: str) -> str:
    """The one red line a widget shows for a refused request."""
    return f"<span style='color:#b00'>rapidinr: {html.escape(message)}</span>"


class InteractiveFigure:
    """Controls + a figure that follows them.

    controls: name -> ipywidget with a ``.value``; render(**values) -> matplotlib Figure.
    ``continuous=False`` redraws only when a control is released or a button is pressed.
    ``names``: command-line options in the library's messages -> the control labels to show instead.
    """

    def __init__(self, controls: dict, render: Callable, title: str = "", auto: bool = True,
                 names: dict[str, str] | None = None):
        self.controls = dict(controls)
        self.render = render
        self.names = names
        self.output = W.Output()
        self.status = W.HTML()
        self.last_figure = None
        self.last_error: str | None = None
        self.renders = 0
        for control in self.controls.values():
            _untruncate(control)
        header = [W.HTML(f"<b>{html.escape(title)}</b>")] if title else []
        self.widget = W.VBox(header + [W.HBox(list(self.controls.values()), layout=W.Layout(flex_flow="row wrap")),
                                       self.status, self.output])
        if auto:
            for control in self.controls.values():
                if hasattr(control, "value"):
                    control.observe(lambda change: self.update(), names="value")

    def values(self) -> dict:
        return {name: c.value for name, c in self.controls.items() if hasattr(c, "value")}

    def run_in_output(self, work: Callable):
        """``work()`` with its output (progress bars, figures) in this UI's Output; returns its result,
        or None after showing a :class:`UserError` as the one red line.

        The error is caught *inside* the ``with self.output`` block: in a live kernel, ipywidgets'
        ``Output.__exit__`` prints any exception that leaves the block as a traceback and swallows it,
        so a handler outside the block would never run. Other exceptions are bugs and propagate.
        """
        refused = None
        with self.output:
            try:
                result = work()
            except UserError as err:
                refused = err
        if refused is not None:
            self.refuse(str(refused))
            return None
        self.last_error = None
        self.status.value = ""
        return result

    def refuse(self, message: str) -> None:
        """Show ``message`` as the one red line under the controls; the figure is cleared."""
        self.output.clear_output()
        self.last_error = plain_message(message, self.names)
        self.last_figure = None
        self.status.value = refusal_html(self.last_error)

    def update(self, **overrides):
        """Redraw from the controls' values (``overrides`` replace some); returns the Figure or None."""
        values = {**self.values(), **overrides}
        self.output.clear_output(wait=True)

        def draw():
            fig = self.render(**values)
            if fig is not None:
                show(fig)
            return fig

        fig = self.run_in_output(draw)
        if self.last_error is not None:
            return None
        self.last_figure = fig
        self.renders += 1
        return fig

    def _ipython_display_(self):
        if self.renders == 0 and self.last_error is None:
            self.update()
        display(self.widget)


def _untruncate(control) -> None:
    """Show a control's whole label (ipywidgets cuts descriptions at about 80 px) and let a
    dropdown grow to its longest option."""
    style = getattr(control, "style", None)
    if style is not None and hasattr(style, "description_width"):
        style.description_width = "initial"
    if isinstance(control, (W.Dropdown, W.SelectMultiple)):
        control.layout.width = "max-content"


# -- 00_walkthrough: one image, its INR, decoded at any scale -------------------------------------
DECODE_SCALES = (1, 2, 4, 8)  # what the decode explorer offers (the notebook's SCALE must be one)


def render_decode(inrs, images: torch.Tensor | None, index: int, scale: int):
    """Original (when given), the INR's decode at its size, and at ``scale``× (continuous SIREN)."""
    from matplotlib.figure import Figure

    if not 0 <= index < len(inrs):
        raise UserError(f"image index must be 0..{len(inrs) - 1}, got {index}")
    if scale not in DECODE_SCALES:
        raise UserError(f"decode scale must be one of {', '.join(map(str, DECODE_SCALES))}, got {scale}")
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


def decode_explorer(inrs, images: torch.Tensor | None = None, scale: int = 4) -> InteractiveFigure:
    """Pick an image and a decode scale (one of :data:`DECODE_SCALES`, ``scale`` first); shows the
    original, the INR's decode at 1× and at the scale."""
    check_choice("SCALE", scale, DECODE_SCALES)
    controls = {
        "index": W.IntSlider(value=0, min=0, max=max(len(inrs) - 1, 0), description="image",
                             continuous_update=False),
        "scale": W.Dropdown(options=list(DECODE_SCALES), value=scale, description="decode at"),
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
        """Fit the current architecture to the images; returns the figure (or None on a bad request).
        The button reads "fitting..." and is disabled while it runs, so a second press cannot queue."""
        if self.images is None:
            raise UserError("this explorer was made without images to fit")
        values = self.values()
        label = self.button.description
        self.button.disabled, self.button.description, self.button.icon = True, "fitting...", "hourglass"
        self.output.clear_output(wait=True)

        def work():
            arch = arch_for_budget(channels=self.channels, bytes_per_param=self.bytes_per_param, **values)
            spec = search.FitSpec("widget", arch, self.steps, self.lr, values["shape"], values["budget_bytes"])
            row, decoded = search.fit_and_decode(self.images, spec, self.device, progress=True,
                                                 bytes_per_param=self.bytes_per_param)
            fig = render_fit(self.images, decoded, row)
            self.output.clear_output(wait=True)
            show(fig)
            return row, fig

        try:
            done = self.run_in_output(work)
        finally:
            self.button.disabled, self.button.description, self.button.icon = False, label, "play"
        if done is None:
            return None
        self.last_fit, self.last_figure = done
        return self.last_figure


def budget_explorer(channels: int = 3, budget_bytes: float = 2048, bytes_per_param: float = 2.0,
                    images: torch.Tensor | None = None, steps: int = 150, lr: float = 3e-3,
                    device="cpu") -> BudgetExplorer:
    """Byte budget, depth, shape and an optional manual width → the layer widths that fit; with
    ``images``, a "fit" button fits the chosen SIREN to them with a progress bar."""
    return BudgetExplorer(channels, budget_bytes, bytes_per_param, images, steps, lr, device)


def study_explorer(rows_by_study: dict[str, list[dict]]) -> InteractiveFigure:
    """Switch between the Fig. 5 panels of finished studies, optionally keeping one step count
    (the steps dropdown offers only the step counts the chosen study has)."""
    studies = [s for s in ("layers", "w0", "lr") if rows_by_study.get(s)]
    if not studies:
        raise UserError("no study results to show: run a study first")

    def steps_of(study: str) -> list[str]:
        return ["all"] + [str(s) for s in sorted({r["steps"] for r in rows_by_study[study]})]

    def render(study: str, steps_shown: str):
        rows = rows_by_study[study]
        if steps_shown != "all":
            rows = [r for r in rows if str(r["steps"]) == steps_shown]
            if not rows:
                raise UserError(f"the {study} study has no fits with {steps_shown} steps")
        return PLOTS[study](rows)

    study = W.Dropdown(options=studies, value=studies[0], description="study")
    steps = W.Dropdown(options=steps_of(studies[0]), value="all", description="steps")
    return dependent_choices({"study": study, "steps_shown": steps}, render, "Fig. 5 panels", steps_of)


def dependent_choices(controls: dict, render: Callable, title: str, options_of: Callable) -> InteractiveFigure:
    """An :class:`InteractiveFigure` whose first control (a dropdown) decides what the second one
    offers: ``options_of(first value)`` -> the second's options (its first option is the fallback).
    Only choices that exist are ever offered, and a switch redraws once."""
    (first, parent), (second, child) = list(controls.items())[:2]
    ui = InteractiveFigure(controls, render, title, auto=False)
    switching = []  # non-empty while the child dropdown is re-filled

    def on_parent(change):
        options = list(options_of(change["new"]))
        keep = child.value if child.value in options else options[0]
        switching.append(True)
        try:
            child.options = options
            child.value = keep
        finally:
            switching.clear()
        ui.update()

    parent.observe(on_parent, names="value")
    for name, control in controls.items():
        if name != first and hasattr(control, "value"):
            control.observe(lambda change: switching or ui.update(), names="value")
    return ui


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
        super().__init__(controls, self.render_point, "One INR variant against JPEG", auto=auto,
                         names={"--arch": "SIREN", "--dynamic-prune": "prune"})

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
        psnr = measure_weights(inrs.dense_params().cpu(), a, self.images, self.device)
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
        raise UserError("pick at least one layer (ctrl/shift-click selects several)")
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
        raise UserError("pick at least one kind of variant (ctrl/shift-click selects several)")
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

    doc = pipeline_rows(doc)
    table = pipeline_table(doc)
    if data != "all":
        if data not in table:
            raise UserError(f"no rows for {data!r}; this file has {', '.join(table) or 'none'}")
        doc = {"results": {"rows": [r for r in doc["results"]["rows"] if r["data"] == data]}}
        table = {data: table[data]}
    if not table:
        raise UserError("this results file holds no pipeline rows")
    fig, axes, loader_axes = pipeline_figure(doc, len(table))
    plot_pipeline_times(doc, axes=axes, per_epoch=per_epoch, loader_axes=loader_axes)
    fig.tight_layout(rect=NOTE_RECT)
    return fig


def accuracy_explorer(docs: dict[str, dict]) -> InteractiveFigure:
    """Switch between Fig. 7 results documents (the first is shown first: put the committed run
    there) and variant kinds."""
    if not docs:
        raise UserError("no accuracy results to show")
    controls = {"source": W.Dropdown(options=list(docs), value=list(docs)[0], description="results"),
                "kinds": W.SelectMultiple(options=["inr", "jpeg", "original"], value=("inr", "jpeg", "original"),
                                          description="show", rows=3)}
    return InteractiveFigure(controls, lambda source, kinds: render_accuracy(docs[source], kinds), "Fig. 7")


def pipelines_explorer(docs: dict[str, dict]) -> InteractiveFigure:
    """Switch between Fig. 8 results documents (the first is shown first), one dataset or all,
    total or per-epoch time; the dataset dropdown offers only the chosen document's datasets."""
    if not docs:
        raise UserError("no pipeline results to show")

    def sets_of(source: str) -> list[str]:
        return ["all"] + sorted({r["data"] for r in pipeline_rows(docs[source])["results"]["rows"]})

    first = list(docs)[0]
    controls = {"source": W.Dropdown(options=list(docs), value=first, description="results"),
                "data": W.Dropdown(options=sets_of(first), value="all", description="data"),
                "per_epoch": W.Checkbox(value=True, description="per epoch")}
    return dependent_choices(controls, lambda source, data, per_epoch: render_pipelines(docs[source], data, per_epoch),
                             "Fig. 8", sets_of)


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
