"""JPEG baselines (real bytes, budgets, downsampling) and the figure functions."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from rapidinr.codec.classical import encode_jpeg
from rapidinr.core.metrics import psnr
from rapidinr.study import baselines
from rapidinr.study.figures.rate_distortion import plot_rd, rd_curves
from rapidinr.study.figures.residuals import plot_residuals, residual_data
from rapidinr.study.figures.weights import plot_weights, weight_histograms, weight_samples


@pytest.fixture(scope="module")
def photos():
    from rapidinr.sources.datasets import load_sample_crops

    return load_sample_crops(4, (32, 32), seed=1).images


def test_jpeg_bytes_are_the_real_file_and_psnr_is_the_one_psnr(photos):
    result = baselines.jpeg(photos, 75)
    for i in range(len(photos)):
        data = encode_jpeg(photos[i], 75, "4:2:0", optimize=True)
        assert result.bytes[i] == len(data)
        decoded = torch.from_numpy(np.array(Image.open(io.BytesIO(data)))).permute(2, 0, 1)
        assert torch.equal(result.images[i], decoded)
        assert 0 < result.scan_bytes[i] < result.bytes[i]
    assert torch.equal(result.psnr, psnr(photos, result.images))
    assert baselines.jpeg(photos, 95).psnr.mean() > baselines.jpeg(photos, 10).psnr.mean()
    assert baselines.jpeg(photos, 50, optimize=False).bytes.sum() > baselines.jpeg(photos, 50).bytes.sum()


def test_budget_matching_picks_the_highest_quality_that_fits(photos):
    budget = float(baselines.jpeg(photos, 60).bytes.double().mean())
    result = baselines.jpeg_at_budget(photos, budget)
    for i in range(len(photos)):
        assert result.bytes[i] <= budget
        q = int(result.quality[i])
        sizes = [len(encode_jpeg(photos[i], k, "4:2:0", optimize=True)) for k in range(1, 101)]
        assert all(size > budget for size in sizes[q:])
    tiny = baselines.jpeg_at_budget(photos, 10.0)
    assert tiny.over_budget.all() and (tiny.quality == 1).all()


def test_downsampling_reconstructs_full_size_within_budget(photos):
    down = baselines.jpeg_downsampled(photos, 90, 2)
    assert down.images.shape == photos.shape and (down.factor == 2).all()
    assert down.bytes.double().mean() < baselines.jpeg(photos, 90).bytes.double().mean()
    matched = baselines.jpeg_downsampled_at_budget(photos, 600.0, factors=(2, 4))
    assert ((matched.bytes <= 600) | matched.over_budget).all()
    assert set(matched.factor.tolist()) <= {2, 4}
    gray = photos[:, :1]
    assert baselines.jpeg(gray, 80).images.shape == gray.shape


def test_figures_draw(tmp_path, photos, tiny_set):
    results = {"name": "t", "images": 2, "results": {
        "INR fp32": {"bpp": [8.0, 4.0], "bytes": [1024, 512], "psnr": [30.0, 25.0]},
        "JPEG": {"bpp": [6.0], "bytes": [768], "psnr": [28.0]}}}
    assert rd_curves(results)["INR fp32"] == ([512, 1024], [25.0, 30.0])
    plot_rd(results).savefig(tmp_path / "rd.png")
    samples = weight_samples(tiny_set.dense_params(), tiny_set.arch)
    assert set(samples) == {"first", "hidden", "last"} and samples["hidden"].abs().max() <= 1
    hist = weight_histograms(tiny_set.dense_params(), tiny_set.arch, bins=11)
    assert hist["first"][1].shape == (11,)
    plot_weights(tiny_set.dense_params(), tiny_set.arch).savefig(tmp_path / "w.png")


def test_residual_figure_data(tmp_path, tiny_images, tiny_set):
    data = residual_data(tiny_images, tiny_set, 0, budget=700.0)
    names = list(data)
    assert names[0] == "original" and names[1] == "INR" and len(names) == 5
    assert names[4].startswith("WebP") and data[names[4]]["bytes"] <= 700
    assert data["original"]["residual"].abs().max() == 0
    assert data["INR"]["psnr"] == pytest.approx(float(tiny_set.psnr[0]), abs=1e-3)
    plot_residuals(data).savefig(tmp_path / "r.png")
