"""rapidinr.study.search: architectures sized to a byte budget (uniform and tapered), the fits, the rows."""
from __future__ import annotations

import json

import pytest
import torch

from rapidinr.codec.inrset import INRSet
from rapidinr.core import siren
from rapidinr.core.config import Arch
from rapidinr.core.errors import UserError
from rapidinr.core.metrics import psnr
from rapidinr.study import search


@pytest.fixture(scope="module")
def photos():
    return search.study_images(search.SearchSettings(images=2, size=16))


def test_tapered_arch_shapes_and_param_count():
    arch = search.TaperedArch.of([4, 8, 4], channels=3)
    assert arch.layer_shapes() == [(2, 4), (4, 8), (8, 4), (4, 3)]
    assert arch.n_params == (2 * 4 + 4) + (4 * 8 + 8) + (8 * 4 + 4) + (4 * 3 + 3)
    assert arch.hidden == 8 and arch.layers == 3 and arch.name == "4-8-4"
    assert arch.to_json()["widths"] == [4, 8, 4]
    with pytest.raises(UserError):
        search.TaperedArch.of([4, 0, 4])


def test_tapered_gradient_matches_autograd():
    """The hand-written backward pass handles layers of different widths."""
    arch = search.TaperedArch.of([5, 9, 6], channels=3)
    params = siren.init_params(arch, range(3))
    coords = siren.coordinate_grid(6, 7)
    target = torch.rand(3, 42, 3) * 2 - 1
    mse, grad = siren.loss_and_grad(params, arch, coords, target)
    leaf = params.clone().requires_grad_(True)
    ref = (siren.forward(leaf, arch, coords) - target).square().mean(dim=(1, 2))
    ref.sum().backward()
    torch.testing.assert_close(mse, ref.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, leaf.grad, rtol=1e-4, atol=1e-5)
    # and a uniform arch right after (the CPU workspace is keyed by layer shapes)
    uni = Arch(3, 9, 3)
    mse_u, _ = siren.loss_and_grad(siren.init_params(uni, range(3)), uni, coords, target)
    assert torch.isfinite(mse_u).all()


@pytest.mark.parametrize("budget", [600, 1024, 2048, 13.5 * 1024])
def test_budget_sizing_is_the_widest_that_fits(budget):
    for layers in (2, 4, 8):
        arch = search.uniform_for_budget(layers, budget, channels=3)
        assert search.arch_bytes(arch) <= budget
        assert search.arch_bytes(Arch(layers, arch.hidden + 1, 3)) > budget
        tapered = search.tapered_for_budget(layers, budget, channels=3)
        assert search.arch_bytes(tapered) <= budget
        widths = tapered.widths
        if layers >= 4:
            assert widths[len(widths) // 2] > widths[0] and widths[len(widths) // 2] > widths[-1]
        # within one width step of the budget: a bigger scale would not fit
        assert search.arch_bytes(tapered) > 0.75 * budget


def test_paper_budget_matches_its_10x40_at_fp16():
    assert search.arch_bytes(Arch(10, 40, 3)) == 15003 * 2  # "29 KB"
    names = [a.name for _, a in search.architectures_for_budget(29 * 1024, [10], shapes=["uniform"])]
    assert names == ["10x39"]


def test_over_budget_is_a_clear_error():
    with pytest.raises(UserError, match="over the budget of 1024 bytes"):
        search.check_budget(Arch(8, 40, 3), 1024)
    with pytest.raises(UserError, match="holds no SIREN"):
        search.architectures_for_budget(10, [3])
    with pytest.raises(UserError, match="uniform"):
        search.architectures_for_budget(1024, [3], shapes=["pyramid"])


def test_only_tapered_from_three_layers():
    shapes = [(s, a.layers) for s, a in search.architectures_for_budget(2048, [1, 2, 3])]
    assert ("tapered", 1) not in shapes and ("tapered", 2) not in shapes and ("tapered", 3) in shapes


def test_fit_row_records_the_one_psnr(photos):
    spec = search.FitSpec("layers", search.TaperedArch.of([6, 10, 6]), steps=40, lr=3e-3, shape="tapered",
                          budget_bytes=1024)
    row = search.fit_row(photos, spec, fail_below_db=15)
    assert row["widths"] == [6, 10, 6] and row["images"] == 2 and row["steps"] == 40
    assert row["bytes_per_image"] == spec.arch.n_params * 2 <= 1024
    assert len(row["psnr"]) == 2 and row["psnr_mean"] == pytest.approx(sum(row["psnr"]) / 2, abs=1e-3)
    assert row["psnr_mean"] > 12  # 40 steps learn something
    json.dumps(row)  # every row is JSON
    # the same fit done by hand gives the same PSNR (seeded init, deterministic on the CPU)
    from rapidinr.core.config import FitConfig
    from rapidinr.encoding.fit import fit

    result = fit(photos, spec.arch, FitConfig(steps=40, lr=3e-3, max_refits=0), progress=False)
    again = psnr(photos, INRSet(result.params, spec.arch, 16, 16).decode())
    assert row["psnr"] == pytest.approx(again.tolist(), abs=1e-3)


def test_more_steps_fit_better(photos):
    rows = search.run_fits(photos, [search.FitSpec("lr", Arch(3, 12, 3), s, 3e-3) for s in (5, 80)],
                           progress=False)
    assert rows[1]["psnr_mean"] > rows[0]["psnr_mean"] + 2


def test_lr_specs_fit_like_the_paper():
    specs = search.lr_specs([1e-3, 1e-2], [10, 20])
    assert len(specs) == 4 and all(not s.keep_best and s.max_refits == 0 for s in specs)
    with pytest.raises(UserError):
        search.lr_specs([2.0], [10])


def test_settings_validate():
    search.SearchSettings.full()  # the paper-sized preset is valid
    for bad in ({"images": 0}, {"size": 4}, {"layers": (0, 3)}, {"lrs": (1e-3, 5.0)}, {"budgets_bytes": ()},
                {"layer_steps": (10, -1)}):
        with pytest.raises(UserError):
            search.SearchSettings(**bad)


def test_study_rows_summary_and_results_roundtrip(tmp_path, photos):
    settings = search.SearchSettings(images=2, size=16, budgets_bytes=(512.0,), layers=(2, 3), layer_steps=(10,))
    rows = search.run_study("layers", settings, progress=False, images=photos)
    assert {r["shape"] for r in rows} == {"uniform", "tapered"}
    assert all(r["bytes_per_image"] <= 512 for r in rows)
    lines = search.summarize(rows)
    assert lines and lines[0].startswith("5a budget 512 B, 10 steps")
    path = search.save_results(tmp_path / "s.json", "fig5a", rows, settings.to_json())
    doc = search.load_results(path)
    assert doc["results"] == rows and doc["hardware"]["torch"] == torch.__version__
    with pytest.raises(UserError, match="no such results file"):
        search.load_results(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError, match="not a readable results JSON"):
        search.load_results(tmp_path / "bad.json")
    with pytest.raises(UserError, match="unknown study"):
        search.run_study("depth", settings, images=photos)


def test_lr_failures_count_only_rates_above_each_images_best():
    rows = [{"sweep": "lr", "steps": 10, "lr": lr, "psnr": psnr, "psnr_mean": sum(psnr) / 2, "images": 2,
             "collapsed": 0}
            for lr, psnr in ((1e-4, [10.0, 12.0]), (1e-3, [30.0, 25.0]), (1e-2, [29.0, 15.0]), (1e-1, [9.0, 14.0]))]
    search.mark_lr_failures(rows, drop_db=6.0)
    assert [r["failed_vs_best"] for r in rows] == [0, 0, 1, 2]  # slow low rates are not failures
    assert "1e-2" not in search.summarize(rows)[0] and "0.01 (1/2 6 dB under their best" in search.summarize(rows)[0]
