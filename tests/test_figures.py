"""The figure registry and ``rapidinr figures``: PNG + SVG + JSON per figure, headless."""
from __future__ import annotations

import json
import types

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
