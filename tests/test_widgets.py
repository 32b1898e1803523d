"""Widget callbacks, called directly (no browser, no kernel), and their refusals in a live kernel."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("ipywidgets")

from rapidinr import encode  # noqa: E402
from rapidinr.core.errors import UserError  # noqa: E402
from rapidinr.study import search, widgets  # noqa: E402


@pytest.fixture(scope="module")
def small_set():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8, generator=g)
    images[1] = 0  # a black image decodes very differently from noise
    inrs = encode(images, "2x8", steps=30, progress=False, labels=torch.tensor([0, 1, 0]), class_names=["a", "b"])
    return inrs, images


def _pixels(fig):
    return [im.get_array().copy() for ax in fig.axes for im in ax.get_images()]


def test_decode_explorer_follows_its_controls(small_set):
    inrs, images = small_set
    ui = widgets.decode_explorer(inrs, images)
    first = ui.update()
    assert ui.renders == 1 and len(first.axes) == 3
    assert _pixels(first)[2].shape[:2] == (32, 32)  # decoded at 4x by default
    ui.controls["index"].value = 1  # what a slider move does
    assert ui.renders == 2 and ui.last_figure is not first
    assert not (_pixels(first)[1] == _pixels(ui.last_figure)[1]).all()
    ui.controls["scale"].value = 2
    assert _pixels(ui.last_figure)[2].shape[:2] == (16, 16)
    assert "image 1 (b)" in ui.last_figure._suptitle.get_text()


def test_decode_explorer_bad_index_is_a_message_not_an_exception(small_set):
    inrs, images = small_set
    ui = widgets.decode_explorer(inrs, images)
    assert ui.update(index=7) is None
    assert ui.last_error == "image index must be 0..2, got 7"
    assert "image index must be 0..2" in ui.status.value
    assert ui.update(index=0) is not None and ui.last_error is None and ui.status.value == ""


def test_budget_explorer_sizes_and_refuses_over_budget():
    ui = widgets.budget_explorer(channels=3, budget_bytes=2048)
    fig = ui.update()
    title = fig.axes[0].get_title()
    assert "of 2048 B" in title and title.startswith("4x")
    ui.controls["hidden"].value = 200  # too wide for 2 KB
    assert ui.last_figure is None and "over the budget of 2048 bytes" in ui.last_error
    ui.controls["hidden"].value = 0
    ui.controls["shape"].value = "tapered"
    widths = [p.get_height() for p in ui.last_figure.axes[0].patches]
    assert widths[1] > widths[0] and search.arch_bytes(search.TaperedArch.of(widths)) <= 2048
    ui.controls["hidden"].value = 10
    assert "always sized to the budget" in ui.last_error


def test_study_explorer_switches_panels():
    rows = {"w0": [{"sweep": "w0", "arch": "3x8", "layers": 3, "widths": [8] * 3, "w0": w, "steps": 10,
                    "psnr_mean": 20 + w / 30, "images": 1, "psnr": [20.0]} for w in (10.0, 30.0)],
            "lr": [{"sweep": "lr", "arch": "3x15", "lr": lr, "steps": s, "psnr_mean": 20.0, "psnr": [20.0],
                    "images": 1, "collapsed": int(lr > 0.01)} for lr in (1e-3, 3e-2) for s in (10, 20)]}
    ui = widgets.study_explorer(rows)
    assert "w0" in ui.update().axes[0].get_title()
    ui.controls["study"].value = "lr"
    assert "learning rate" in ui.last_figure.axes[0].get_title()
    ui.controls["steps_shown"].value = "20"
    assert len(ui.last_figure.axes[0].get_lines()) == 1
    with pytest.raises(UserError):
        widgets.study_explorer({})


def test_bugs_in_a_render_are_not_swallowed():
    ui = widgets.InteractiveFigure({}, lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        ui.update()


def test_check_parameter_and_plain_errors_outside_ipython():
    widgets.check_parameter("IMAGES", 5, 1, 10)
    with pytest.raises(UserError, match="parameter IMAGES = 0 is out of range: use 1..10"):
        widgets.check_parameter("IMAGES", 0, 1, 10)
    with pytest.raises(UserError):
        widgets.check_parameter("LR", "fast", 0, 1)
    assert widgets.show_errors_plainly() is False


def test_core_does_not_import_ipywidgets():
    import subprocess
    import sys

    code = ("import sys, rapidinr, rapidinr.study.search, rapidinr.study.figures, rapidinr.study.figures.search, rapidinr.cli; "
            "print('ipywidgets' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_budget_explorer_fit_button_fits_the_chosen_arch():
    images = search.study_images(search.SearchSettings(images=2, size=12))
    ui = widgets.budget_explorer(budget_bytes=1024, images=images, steps=20)
    ui.controls["layers"].value = 2
    ui.button.click()  # what pressing the button does
    row = ui.last_fit
    assert row["arch"] == search.uniform_for_budget(2, 1024).name and row["steps"] == 20
    assert row["bytes_per_image"] <= 1024 and len(row["psnr"]) == 2
    assert len(ui.last_figure.axes) == 4  # 2 originals over 2 decodes
    assert not ui.button.disabled and ui.button.description == "fit 2 images"  # busy state undone
    ui.controls["hidden"].value = 100  # over budget: the button refuses with a message
    assert ui.fit() is None and "over the budget" in ui.last_error


def test_init_race_follows_the_slider_and_keeps_an_image_that_left_early():
    traces = {"random": {0: {10: 10.0, 20: 20.0, 30: 30.0}, 1: {10: 12.0, 20: 22.0, 30: 32.0}},
              "learned": {0: {10: 25.0, 20: 35.0, 30: 36.0}, 1: {10: 27.0}}}  # image 1 left after step 10
    targets = torch.tensor([30.0, 32.0])
    ui = widgets.init_race_explorer(traces, targets)
    mean = ui.update()
    lines = {line.get_label(): line for line in mean.axes[0].get_lines()}
    assert list(lines["learned"].get_xdata()) == [10, 20, 30]
    assert list(lines["learned"].get_ydata()) == [26.0, 31.0, 31.5]  # image 1's 27 dB carried forward
    assert lines["target 31.00 dB"].get_ydata()[0] == 31.0
    one = ui.update(index=0)
    assert list({l.get_label(): l for l in one.axes[0].get_lines()}["random"].get_ydata()) == [10.0, 20.0, 30.0]
    assert ui.update(index=5) is None and "0..1" in ui.last_error


def test_fit_candidates_plot_marks_the_chosen_pair():
    from rapidinr.core.config import Arch
    from rapidinr.encoding.learned_init import resolve_init

    fit_info = resolve_init("learned", Arch.parse("3x15", 1), 32, 32).info["fit"]
    fig = widgets.render_fit_candidates(fit_info)
    chosen = next(line for line in fig.axes[0].get_lines() if line.get_label() == "chosen")
    assert (chosen.get_xdata()[0], chosen.get_ydata()[0]) == (fit_info["steps"], fit_info["median_steps_to_reference"])


# -- in a live kernel -------------------------------------------------------------------------------
# Called directly (above), a UserError in a render reaches InteractiveFigure's handler. In a kernel,
# ipywidgets' Output.__exit__ prints any exception leaving ``with output:`` as a traceback and
# swallows it; only a notebook executed in a real kernel shows that, so these cells run in one.
KERNEL_CELLS = [
    """import torch
from rapidinr import encode
from rapidinr.study import search, widgets
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8, generator=g)
inrs = encode(images, "2x8", steps=20, progress=False)""",
    # the Fig. 3 explorer: over the budget, not an architecture, zero layers, not a schedule
    """ui = widgets.rd_explorer(images, steps=10, retrain_steps=5, progress=False)
display(ui.widget)
for arch in ("8x64", "3xfoo", "0x10"):
    ui.controls["arch"].value = arch
    print("REFUSED", ui.last_error)
ui.controls["arch"].value = "2x8"
ui.controls["schedule"].value = "banana"
print("REFUSED", ui.last_error)""",
    """ui = widgets.weights_explorer(inrs.dense_params(), inrs.arch)
display(ui.widget)
ui.controls["layers"].value = ()
print("REFUSED", ui.last_error)""",
    """ui = widgets.budget_explorer(budget_bytes=1024)
display(ui.widget)
ui.controls["hidden"].value = 40
print("REFUSED", ui.last_error)
ui.controls["shape"].value = "tapered"
print("REFUSED", ui.last_error)""",
    """rows = {"layers": [{"sweep": "layers", "arch": "2x8", "layers": 2, "widths": [8, 8], "shape": "uniform", "steps": 100,
                    "budget_bytes": 1024, "bytes_per_param": 2.0, "psnr_mean": 20.0, "psnr": [20.0], "images": 1}],
        "w0": [{"sweep": "w0", "arch": "3x8", "layers": 3, "widths": [8] * 3, "w0": 30.0, "steps": 150,
                "psnr_mean": 21.0, "images": 1, "psnr": [21.0]}]}
ui = widgets.study_explorer(rows)
display(ui.widget)
print("OFFERED", ui.controls["steps_shown"].options)
ui.controls["study"].value = "w0"
print("OFFERED", ui.controls["steps_shown"].options, ui.last_error)""",
    """doc = {"results": {"variants": [{"label": "a", "kind": "inr", "bytes_per_image": 100.0, "accuracy": 0.5, "psnr": 30.0}]}}
ui = widgets.accuracy_explorer({"committed": doc})
display(ui.widget)
ui.controls["kinds"].value = ()
print("REFUSED", ui.last_error)""",
]


@pytest.mark.slow
def test_refusals_in_a_live_kernel_are_one_line_never_a_traceback(monkeypatch):
    import json

    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in KERNEL_CELLS])
    from rapidinr.study.notebooks_html import notebook_client

    notebook_client(nb, Path.cwd(), timeout=180).execute()
    everything = json.dumps(nb)  # cell outputs and the Output widgets' captured outputs (widget state)
    assert "Traceback" not in everything and '"output_type": "error"' not in everything
    printed = [line for cell in nb.cells for o in cell.outputs for line in o.get("text", "").splitlines()]
    refused = [line for line in printed if line.startswith("REFUSED")]
    assert len(refused) == 8 and "None" not in " ".join(refused), printed
    assert "over the budget" in refused[0] and "SIREN" in refused[1] and "--arch" not in refused[1]
    assert "SIREN" in refused[2] and "prune" in refused[3] and "--dynamic-prune" not in refused[3]
    assert "at least one layer" in refused[4] and "over the budget" in refused[5]
    assert "always sized to the budget" in refused[6] and "at least one kind" in refused[7]
    offered = [line for line in printed if line.startswith("OFFERED")]
    assert offered == ["OFFERED ('all', '100')", "OFFERED ('all', '150') None"]
