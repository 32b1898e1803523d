"""Figs. 3, 4, 6, 7, 8: their producers and the notebook widgets, called directly (no browser, no kernel)."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("ipywidgets")

from rapidinr.core.config import Arch  # noqa: E402
from rapidinr.study import widgets  # noqa: E402
from rapidinr.study.figures import producers, samples, write_figures  # noqa: E402
from rapidinr.study.figures.training import pipeline_rows  # noqa: E402

PAPER_FIGS = ["fig3_rate_distortion", "fig4_weights", "fig6_residuals", "fig7_accuracy", "fig8_training_time"]
TINY = samples.SampleSettings(images=3, size=12, arch="2x8", steps=25, retrain_steps=10, qualities=(20, 80),
                              rd_archs=("2x6",))

ACCURACY_DOC = {"settings": {"images": 8, "epochs": 1}, "results": {"variants": [
    {"label": "original", "kind": "original", "bytes_per_image": 784, "accuracy": 0.7, "psnr": None},
    {"label": "inr-8bit", "kind": "inr", "bytes_per_image": 750, "accuracy": 0.66, "psnr": 30.9},
    {"label": "jpeg@inr-8bit", "kind": "jpeg", "bytes_per_image": 716, "accuracy": 0.68, "psnr": 50.9}]}}
# benchmarks/pipelines.py's shape: results.sizes[HxW].runs[NAME].epoch
PIPELINES_DOC = {"results": {"sizes": {"28x28": {"runs": {
    name: {"epoch": {"wall_s": wall, "data_s": data, "step_s": wall - data}, "test_accuracy": 0.1}
    for name, wall, data in (("inr", 6.0, 0.5), ("tensor", 5.0, 0.1), ("jpeg-1w", 8.0, 3.0))}}}}}


@pytest.fixture
def results_dir(tmp_path):
    (tmp_path / "training-accuracy-cpu.json").write_text(json.dumps(ACCURACY_DOC))
    (tmp_path / "pipelines-cpu.json").write_text(json.dumps(PIPELINES_DOC))
    return tmp_path


@pytest.fixture(scope="module")
def tiny_sets():
    return samples.fitted(TINY)  # (images, fp32 INRSet, pruned + 8-bit INRSet)


def test_producers_list_figs_3_to_8_in_paper_order():
    names = [p.name for p in producers()]
    for name in PAPER_FIGS:
        assert name in names
    assert [n for n in names if n in PAPER_FIGS] == PAPER_FIGS
    assert names.index("fig4_weights") < names.index("fig5a_layers") < names.index("fig6_residuals")


def test_write_figures_quick_writes_png_svg_json_for_each(tmp_path, results_dir, monkeypatch):
    monkeypatch.setattr(samples.SampleSettings, "quick", staticmethod(lambda: TINY))  # seconds, not tens
    out = tmp_path / "figs"
    done = write_figures(out, quick=True, only=PAPER_FIGS, results_dir=results_dir, log=lambda *_: None)
    assert [d.get("error") for d in done] == [None] * len(PAPER_FIGS)
    for name in PAPER_FIGS:
        for ext in ("png", "svg", "json"):
            assert (out / f"{name}.{ext}").stat().st_size > 100, (name, ext)
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    fig3 = json.loads((out / "fig3_rate_distortion.json").read_text())["data"]["results"]["results"]
    assert {"INR fp32", "INR 8-bit layer-wise", "JPEG"} <= set(fig3)
    fig4 = json.loads((out / "fig4_weights.json").read_text())["data"]
    assert set(fig4["histograms"]) == {"first", "hidden", "last"}
    fig8 = json.loads((out / "fig8_training_time.json").read_text())["data"]
    assert fig8["source"].endswith("pipelines-cpu.json") and len(fig8["document"]["results"]["rows"]) == 3


def test_full_size_without_results_names_the_missing_file(tmp_path):
    done = write_figures(tmp_path / "figs", quick=False, only=["fig3_rate_distortion", "fig7_accuracy",
                                                               "fig8_training_time"],
                         results_dir=tmp_path, log=lambda *_: None)
    errors = {d["name"]: d["error"] for d in done}
    assert "rd-full.json" in errors["fig3_rate_distortion"]
    assert "training-accuracy-cuda.json" in errors["fig7_accuracy"]
    assert "pipelines-cuda.json" in errors["fig8_training_time"]
    assert not list((tmp_path / "figs").glob("*"))  # nothing half-written


def test_pipeline_rows_converts_the_benchmark_shape():
    rows = pipeline_rows(PIPELINES_DOC)["results"]["rows"]
    by = {(r["pipeline"], r["workers"]): r for r in rows}
    assert set(by) == {("inr", 0), ("tensor", 0), ("jpeg", 1)}
    assert by[("jpeg", 1)]["data_s"] == 3.0 and by[("jpeg", 1)]["mean_epoch_s"] == 8.0
    assert pipeline_rows({"results": {"rows": rows}})["results"]["rows"] is rows  # already rows: unchanged


def test_weight_bytes_counts_first_and_last_layers_at_32_bits():
    arch = Arch.parse("3x15", 3)  # first 45, hidden 480, last 48 parameters
    assert widgets.weight_bytes(arch, 8, "hidden") == 480 + 93 * 4
    assert widgets.weight_bytes(arch, 8, "all") == 573
    assert widgets.weight_bytes(arch, 32, "hidden") == 573 * 4


def test_rd_explorer_point_redraw_and_plain_errors(tiny_sets):
    images = tiny_sets[0]
    ui = widgets.rd_explorer(images, None, arch="2x6", steps=20, retrain_steps=5, budget_bytes=2000, progress=False)
    fig = ui.update()
    assert fig is not None and ui.last_error is None
    p8 = ui.last_point
    assert p8["bits"] == 8 and p8["inr_bytes"] > 0 and 0 < p8["inr_psnr"] < 100 and p8["jpeg_quality"] == 50
    ui.controls["bits"].value = 32  # no new fit: the cache serves it
    assert len(ui._fits) == 1 and ui.last_point["inr_bytes"] > p8["inr_bytes"]
    ui.controls["quality"].value = 90
    assert ui.last_point["jpeg_bytes"] > p8["jpeg_bytes"]
    assert ui.update(arch="8x64") is None
    assert "architecture 8x64 needs" in ui.last_error and "over the budget of 2000 bytes" in ui.last_error
    assert "rapidinr: architecture 8x64" in ui.status.value
    assert ui.update(schedule="35:0.1,30:0.2") is None and "must strictly increase" in ui.last_error
    assert ui.update(quality=0) is None and "JPEG quality must be 1..100" in ui.last_error
    assert ui.update(arch="3y15") is None and "3y15" in ui.last_error
    assert ui.update() is not None and ui.last_error is None and ui.status.value == ""


def test_weights_explorer_counts_the_chosen_layers_and_images(tiny_sets):
    inrs = tiny_sets[1]
    names = widgets.layer_names(inrs.arch)
    assert names == ["layer 1 (first)", "layer 2 (hidden)", "layer 3 (last)"]
    ui = widgets.weights_explorer(inrs.dense_params(), inrs.arch)
    fig = ui.update(layers=("layer 2 (hidden)",), images=(0, 1))
    assert len(fig.axes) == 1
    assert f"{2 * 8 * 8} weights" in fig.axes[0].get_title()  # 2 images x one 8x8 hidden matrix
    assert len(ui.update().axes) == 3  # default: first, one hidden, last
    assert ui.update(layers=()) is None and ui.last_error.startswith("pick at least one layer")
    assert ui.update(layers=("layer 9 (hidden)",)) is None and "unknown layer" in ui.last_error
    assert ui.update(images=(2, 9)) is None and "within 0..2" in ui.last_error


def test_residual_explorer_shows_four_methods_and_refuses_bad_index(tiny_sets):
    images, _, packed = tiny_sets
    ui = widgets.residual_explorer(images, packed)
    fig = ui.update(index=1)
    # original, INR, JPEG, downsampled JPEG, WebP; each with its residual; one residual colour bar
    assert len(fig.axes) == 11
    titles = [ax.get_title() for ax in fig.axes]
    assert any(t.startswith("INR") for t in titles) and any("×2" in t for t in titles)
    assert ui.update(factor=4) is not None and any("×4 q" in ax.get_title() for ax in ui.last_figure.axes)
    assert ui.update(index=3) is None and ui.last_error == "image index must be 0..2, got 3"


def test_accuracy_and_pipeline_explorers_filter_and_refuse():
    acc = widgets.accuracy_explorer({"cpu": ACCURACY_DOC})
    fig = acc.update(kinds=("inr",))
    from matplotlib.text import Annotation

    assert [t.get_text().split(":")[0] for t in fig.axes[0].texts if isinstance(t, Annotation)] == ["inr-8bit"]
    assert acc.update(kinds=()) is None and "at least one" in acc.last_error
    pipes = widgets.pipelines_explorer({"cpu": PIPELINES_DOC})
    fig = pipes.update()
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["inr", "tensor", "jpeg/1w"]
    assert pipes.update(data="default@64x64") is None and "default@28x28" in pipes.last_error


@pytest.mark.slow
@pytest.mark.parametrize("name,bad", [("01_rate_distortion", "QUALITIES = (50, 101)"),
                                      ("06_training_time", "BATCH_SIZE = 0")])
def test_paper_notebook_bad_parameter_reads_as_one_line(name, bad, monkeypatch):
    """A parameter out of range stops the notebook at its check with one red line (no traceback wall)."""
    import copy

    import nbformat
    from nbclient.exceptions import CellExecutionError

    from tests.test_notebooks import NOTEBOOK_DIR, _execute, _first_code_cell

    nb = copy.deepcopy(nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4))
    nb.cells.insert(nb.cells.index(_first_code_cell(nb)) + 1, nbformat.v4.new_code_cell(bad))
    with pytest.raises(CellExecutionError):
        _execute(nb, monkeypatch, timeout=120)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert len(errors) == 1 and len(errors[0]["traceback"]) == 1
    assert "rapidinr: error: parameter" in errors[0]["traceback"][0] and "out of range" in errors[0]["traceback"][0]
