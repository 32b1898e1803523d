"""The figure registry and ``rapidinr figures``: PNG + SVG + JSON per figure, headless."""
from __future__ import annotations

import json
import types

import pytest
from PIL import Image

from rapidinr.cli import main
from rapidinr.core.errors import UserError
from rapidinr.study import figures


def test_registry_lists_every_figure_in_the_papers_order():
    papers = [p.paper for p in figures.producers()]
    assert {"fig5a_layers", "fig5b_w0", "fig5c_lr"} <= {p.name for p in figures.producers()}
    assert papers == sorted(papers, key=lambda paper: paper.split()[-1][0])  # Fig. 3 ... Fig. 8


def _fake_module(monkeypatch, producers):
    module = types.ModuleType("rapidinr_test_figs")
    module.PRODUCERS = producers
    monkeypatch.setattr(figures, "MODULES", [module])


def _line_figure(ctx):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2))
    ax = fig.subplots()
    ax.plot([1, 2, 3], [3, 1, 2])
    ax.set_xlabel("x")
    return fig, {"points": [1, 2, 3], "quick": ctx.quick}


def _missing_results(ctx):
    raise UserError("results/fig7.json: no such results file")


def test_cli_writes_png_svg_json_and_skips_a_figure_with_bad_input(monkeypatch, tmp_path, capsys):
    _fake_module(monkeypatch, [figures.Producer("good", "Fig. 0", "a line", _line_figure),
                               figures.Producer("needs_results", "Fig. 7", "needs a file", _missing_results)])
    out = tmp_path / "figs"
    assert main(["figures", "-o", str(out), "--quick", "--device", "cpu"]) == 2
    text = capsys.readouterr().out
    assert "needs_results" in text and "skipped: results/fig7.json: no such results file" in text
    assert sorted(p.name for p in out.iterdir()) == ["good.json", "good.png", "good.svg"]
    assert Image.open(out / "good.png").size[0] > 100
    assert (out / "good.svg").read_text().lstrip().startswith("<?xml")
    doc = json.loads((out / "good.json").read_text())
    assert doc["name"] == "good" and doc["quick"] is True and doc["data"]["points"] == [1, 2, 3]


def test_cli_only_and_list(monkeypatch, tmp_path, capsys):
    _fake_module(monkeypatch, [figures.Producer("good", "Fig. 0", "a line", _line_figure)])
    assert main(["figures", "--list"]) == 0
    assert "good" in capsys.readouterr().out
    assert main(["figures", "-o", str(tmp_path / "x"), "--only", "nope"]) == 2
    assert "unknown figure nope; available: good" in capsys.readouterr().err
    assert main(["figures", "--quick"]) == 2
    assert "-o/--output DIR is required" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # no partial output for a bad request


def test_fig5c_quick_end_to_end(tmp_path):
    """A real Fig. 5 producer through the CLI: rows behind the plot are in the JSON."""
    assert main(["figures", "-o", str(tmp_path), "--quick", "--only", "fig5c_lr", "--device", "cpu"]) == 0
    doc = json.loads((tmp_path / "fig5c_lr.json").read_text())
    rows = doc["data"]["rows"]
    settings = doc["data"]["settings"]
    assert len(rows) == len(settings["lrs"]) * len(settings["lr_steps"])
    assert all(r["sweep"] == "lr" and len(r["psnr"]) == settings["images"] for r in rows)
    assert Image.open(tmp_path / "fig5c_lr.png").size[0] > 400


def test_full_size_figure_reads_committed_results(tmp_path):
    from rapidinr.study import search
    from rapidinr.study.figures.search import study_rows

    rows = [{"sweep": "w0", "arch": "3x8", "layers": 3, "widths": [8, 8, 8], "w0": w, "steps": 10,
             "psnr_mean": 20.0 + w / 10, "images": 1, "psnr": [20.0]} for w in (10.0, 30.0)]
    search.save_results(tmp_path / "search-w0-full.json", "fig5b", rows, {"full": True})
    ctx = figures.FigureContext(quick=False, results_dir=tmp_path)
    got, settings, source = study_rows("w0", ctx)
    assert got == rows and source.endswith("search-w0-full.json") and settings == {"full": True}


def test_demo_ends_by_writing_the_quick_figures(monkeypatch, tmp_path, capsys):
    _fake_module(monkeypatch, [figures.Producer("good", "Fig. 0", "a line", _line_figure)])
    assert main(["demo", "-o", str(tmp_path), "--images", "2", "--steps", "3", "--arch", "1x4", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"figures         {tmp_path / 'figures'}" in out
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["good.json", "good.png", "good.svg"]


def test_full_size_fig7_fig8_without_gpu_results_draw_the_cpu_run_and_say_so(tmp_path, capsys):
    """Without --quick and without GPU results, Figs. 7 and 8 are drawn from the committed CPU runs,
    with a note in the log and on the figure, rather than skipped."""
    from rapidinr.study.figures.registry import DEFAULT_RESULTS_DIR

    for name in ("training-accuracy-cpu.json", "pipelines-cpu.json"):
        (tmp_path / name).write_bytes((DEFAULT_RESULTS_DIR / name).read_bytes())
    out = tmp_path / "figs"
    assert main(["figures", "-o", str(out), "--only", "fig7_accuracy,fig8_training_time", "--device", "cpu",
                 "--results", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "wrote 2 figure(s); 0 skipped" in text
    assert text.count("no GPU results") == 2 and "training-accuracy-cuda.json" in text
    assert json.loads((out / "fig7_accuracy.json").read_text())["data"]["note"].startswith("Fig. 7: no GPU results")
    (tmp_path / "training-accuracy-cpu.json").unlink()
    assert main(["figures", "-o", str(out), "--only", "fig7_accuracy", "--results", str(tmp_path)]) == 2
    assert "no results file" in capsys.readouterr().out


def test_fig7_has_intervals_chance_and_the_papers_numbers():
    from matplotlib.figure import Figure

    from rapidinr.study.figures.training import accuracy_interval, plot_accuracy_vs_bytes

    doc = {"settings": {"test_images": 1000, "classes": 10},
           "results": {"variants": [{"label": "original", "kind": "original", "bytes_per_image": 784.0, "psnr": None,
                                     "accuracy": 0.69},
                                    {"label": "inr", "kind": "inr", "bytes_per_image": 700.0, "psnr": 31.0,
                                     "accuracy": 0.67}]}}
    ax = plot_accuracy_vs_bytes(doc, ax=Figure().add_subplot())
    assert abs(accuracy_interval(0.69, 1000) - 1.96 * (0.69 * 0.31 / 1000) ** 0.5) < 1e-12
    texts = " ".join(t.get_text() for t in ax.texts)
    assert "95% interval from 1000 test images" in texts and "90.5%" in texts and "the paper" in texts
    assert any(line.get_label() == "chance (10%)" for line in ax.get_lines())
    assert ax.get_ylim() == (0, 100)


def test_fig7_with_seeds_draws_the_spread_over_seeds_and_pairs_gaps_by_seed():
    from matplotlib.figure import Figure
    from scipy.stats import t

    from rapidinr.study.figures.training import accuracy_gap, plot_accuracy_vs_bytes

    original = {"label": "original", "kind": "original", "bytes_per_image": 784.0, "psnr": None,
                "accuracy": 0.70, "accuracy_per_seed": [0.68, 0.70, 0.72]}
    inr = {"label": "inr", "kind": "inr", "bytes_per_image": 700.0, "psnr": 31.0,
           "accuracy": 0.69, "accuracy_per_seed": [0.66, 0.69, 0.72]}
    doc = {"settings": {"test_images": 1000, "classes": 10}, "results": {"variants": [original, inr]}}
    ax = plot_accuracy_vs_bytes(doc, ax=Figure().add_subplot())
    assert "std over 3 training seeds" in " ".join(t.get_text() for t in ax.texts)
    bars = [c for c in ax.collections if c.get_segments()]
    spans = sorted(round(float(seg[1][1] - seg[0][1]) / 2, 6) for c in bars for seg in c.get_segments())
    assert spans == [2.0, 3.0]  # 100 × sample std of each variant's three seeds
    diff, half, basis = accuracy_gap(inr, original, 1000)  # gaps -2, -1, 0 points: mean -1, std 1
    assert diff == pytest.approx(-1.0) and basis == "paired over 3 seeds"
    assert half == pytest.approx(t.ppf(0.975, 2) / 3 ** 0.5)
    one_seed = accuracy_gap({"accuracy": 0.67}, {"accuracy": 0.69}, 1000)
    assert one_seed[0] == pytest.approx(-2.0) and "one seed" in one_seed[2]


def test_fig3_says_what_the_paper_reports_beside_this_runs_pruning():
    from rapidinr.study.figures.rate_distortion import PAPER_FIG3, paper_note

    results = {"results": {"INR pruned": {"sparsity": [0.1, 0.2, 0.3], "bytes": [1, 2, 3], "psnr": [1, 2, 3]}}}
    note = paper_note(results)
    assert note.startswith(PAPER_FIG3) and "15% on CIFAR-10" in note and "INR pruned 20% zeros (mean over 3 archs)" in note
    assert paper_note({"results": {}}) == PAPER_FIG3


def test_fig8_draws_the_loader_alone_and_says_a_cpu_cannot_show_the_claim():
    from rapidinr.study.figures.registry import DEFAULT_RESULTS_DIR
    from rapidinr.study.figures.training import pipeline_figure, pipeline_rows, plot_pipeline_times

    doc = pipeline_rows(json.loads((DEFAULT_RESULTS_DIR / "pipelines-cpu.json").read_text()))
    fig, axes, loader_axes = pipeline_figure(doc, 2)
    plot_pipeline_times(doc, axes=axes, per_epoch=True, loader_axes=loader_axes)
    assert loader_axes is not None and all(len(ax.patches) == 3 for ax in loader_axes)
    notes = " ".join(t.get_text() for t in fig.texts)
    assert "a CPU" in notes and "needs a GPU run" in notes and "6x faster" in notes
    gpu = {**doc, "hardware": {"gpu": "NVIDIA H100"}}
    fig, axes, loader_axes = pipeline_figure(gpu, 2)
    plot_pipeline_times(gpu, axes=axes, loader_axes=loader_axes)
    assert "needs a GPU run" not in " ".join(t.get_text() for t in fig.texts)
