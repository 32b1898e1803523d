"""Numerical faults: diverging fits are detected and refitted, no set holds NaN, decode checks its inputs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rapidinr import INRSet, UserError, encode, load
from rapidinr.cli import main
from rapidinr.core import siren
from rapidinr.core.config import Arch, FitConfig
from rapidinr.encoding.fit import fit
from rapidinr.sources.datasets import load_source


@pytest.fixture(scope="module")
def fashion() -> torch.Tensor:
    return load_source("default", limit=3, size=(10, 10)).images  # (3, 1, 10, 10) uint8


def test_too_high_a_learning_rate_is_detected_and_refitted(fashion):
    """lr 0.5 drives every SIREN to a constant (its image's mean colour): detected, refitted lower."""
    arch = Arch.parse("2x12", 1)
    alone = fit(fashion, arch, FitConfig(steps=100, lr=0.5, max_refits=0), progress=False)
    rescued = fit(fashion, arch, FitConfig(steps=100, lr=0.5, refit_lr_factor=0.1), progress=False)
    assert rescued.refits >= len(fashion)  # every image collapsed and was refitted
    assert rescued.train_psnr.mean() > alone.train_psnr.mean() + 2
    assert torch.isfinite(rescued.params).all() and torch.isfinite(rescued.train_psnr).all()
    sane = fit(fashion, arch, FitConfig(steps=100, lr=5e-3), progress=False)
    assert sane.refits == 0  # a good learning rate is never flagged


def test_refits_are_reported_by_the_cli_and_the_file_has_no_nan(tmp_path, capsys):
    out = tmp_path / "wild.rinr"
    assert main(["encode", "default", "--limit", "4", "--arch", "2x8", "--steps", "100", "--lr", "0.5", "--size", "10x10",
                 "-o", str(out), "--quiet"]) == 0
    capsys.readouterr()
    inrs = load(out)
    assert inrs.meta["refits"] >= 4 and torch.isfinite(inrs.dense_params()).all()
    assert main(["info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["psnr_mean"] is not None


def test_nan_in_the_loss_is_refitted_and_never_reaches_the_set(fashion, monkeypatch):
    """A fault injected into the loss (NaN for image 2 at step 10 of its first fit) is caught."""
    real = siren.loss_and_grad
    calls = {"n": 0}

    def faulty(params, arch, coords, target):
        mse, grad = real(params, arch, coords, target)
        calls["n"] += 1
        if calls["n"] == 10 and mse.shape[0] > 2:
            mse = mse.clone()
            mse[2] = float("nan")
            params[2] = float("nan")  # the weights blow up too
        return mse, grad

    monkeypatch.setattr(siren, "loss_and_grad", faulty)
    result = fit(fashion, Arch.parse("2x8", 1), FitConfig(steps=40, lr=1e-3), progress=False)
    assert result.refits >= 1
    assert torch.isfinite(result.params).all() and torch.isfinite(result.train_psnr).all()


def test_a_set_with_nan_weights_is_never_written(tmp_path):
    params = siren.init_params(Arch(1, 4, 1), [0, 1])
    params[1, 3] = float("nan")
    with pytest.raises(UserError, match="NaN"):
        INRSet(params, Arch(1, 4, 1), 4, 4).save(tmp_path / "nan.rinr")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def small_set() -> INRSet:
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 3, 5, 4), dtype=np.uint8))
    return encode(images, arch="1x4", steps=5, device="cpu", progress=False)


@pytest.mark.parametrize("indices", [[3], [-1], [0, 7], [2**40], torch.tensor([0.5]), [True], ["a"],
                                     torch.tensor([1.0, 2.0])])
def test_decode_refuses_bad_indices(small_set, indices):
    with pytest.raises(UserError, match="index|indices"):
        small_set.decode(indices)


@pytest.mark.parametrize("size", [0, -3, (0, 4), (4, -1), (16385, 2), (2, 10**9), "32x32", (4,), (1, 2, 3),
                                  (2.5, "x")])
def test_decode_refuses_bad_sizes(small_set, size):
    with pytest.raises(UserError, match="size"):
        small_set.decode([0], size=size)


def test_decode_at_checks_coordinates(small_set):
    good = siren.coordinate_grid(3, 3)  # (9, 2)
    assert small_set.decode_at([0, 1], good).shape == (2, 9, 3)
    assert small_set.decode_at([0, 1], good.expand(2, 9, 2)).shape == (2, 9, 3)
    for bad in (good[:, :1], good.expand(3, 9, 2), good.long(), good[None, None], [[0.0, 0.0]]):
        with pytest.raises(UserError, match="coords"):
            small_set.decode_at([0, 1], bad)


def test_decode_of_extreme_but_finite_weights_stays_in_range(small_set):
    params = small_set.dense_params().clone()
    params[0] = 3e38  # finite, but w0 · x · W overflows to inf and sin(inf) is NaN
    out = INRSet(params, small_set.arch, 5, 4).decode()
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out[1:], small_set.decode([1, 2]))  # the other images are untouched


@pytest.mark.gpu
def test_decode_checks_and_range_on_the_gpu(small_set, tmp_path):
    small_set.save(tmp_path / "s.rinr")
    gpu = load(tmp_path / "s.rinr", device="cuda")
    with pytest.raises(UserError, match="index"):
        gpu.decode([len(gpu)])
    with pytest.raises(UserError, match="size"):
        gpu.decode([0], size=(0, 4))
    params = gpu.dense_params().clone()
    params[0] = 3e38
    out = INRSet(params, gpu.arch, 5, 4).decode()
    assert out.is_cuda and torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(gpu.decode().cpu(), small_set.decode(), atol=1e-5, rtol=0)


def test_a_large_decode_goes_in_pixel_slices_with_the_same_result(small_set):
    """A tiny memory budget forces slices of pixels (a file may claim a 16384² image)."""
    whole = small_set.decode([0, 2], size=(64, 48))
    sliced = small_set.decode([0, 2], size=(64, 48), memory_budget_mb=0.01)  # ~300 pixels a slice
    assert torch.equal(whole, sliced)
    coords = siren.coordinate_grid(20, 10).expand(2, 200, 2)  # per-image coordinates, sliced too
    torch.testing.assert_close(small_set.decode_at([1, 2], coords, memory_budget_mb=0.001),
                               small_set.decode_at([1, 2], coords), atol=1e-6, rtol=0)  # other matmul shapes
