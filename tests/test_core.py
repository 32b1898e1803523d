"""The core: SIREN conventions, the fit, the .rinr round trip, decoding at any size, the CLI."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from rapidinr import Arch, FitConfig, load
from rapidinr.cli import main
from rapidinr.core import siren
from rapidinr.core.metrics import psnr
from rapidinr.encoding.fit import fit, images_to_targets


def test_arch_contract_3x15_has_573_parameters():
    arch = Arch.parse("3x15", channels=3)
    assert arch.layer_shapes() == [(2, 15), (15, 15), (15, 15), (15, 3)]
    assert arch.n_params == 573


def test_coordinates_are_pixel_centres_on_minus_one_one():
    grid = siren.coordinate_grid(2, 4)  # (8, 2) as (x, y)
    assert torch.allclose(grid[:4, 0], torch.tensor([-0.75, -0.25, 0.25, 0.75]))
    assert torch.allclose(grid[:, 1], torch.tensor([-0.5] * 4 + [0.5] * 4))


def test_siren_init_bounds_follow_the_paper():
    arch = Arch(3, 64, 3)
    layers = siren.layer_views(siren.init_params(arch, range(16)), arch)
    first, hidden = layers[0][0], layers[1][0]
    assert first.abs().max() <= 1 / 2 and first.abs().max() > 0.45  # U(-1/2, 1/2) for fan_in 2
    bound = math.sqrt(6 / 64) / 30
    assert hidden.abs().max() <= bound and hidden.abs().max() > 0.95 * bound


def test_init_is_per_image_seeded_so_chunking_cannot_change_it():
    arch = Arch(2, 8, 1)
    whole = siren.init_params(arch, range(10))
    assert torch.equal(whole[3:7], siren.init_params(arch, range(3, 7)))


def test_hand_written_gradient_equals_autograd():
    arch = Arch(3, 7, 3)
    params = siren.init_params(arch, range(3)).double().requires_grad_()
    coords = siren.coordinate_grid(5, 6, dtype=torch.float64)
    target = torch.rand(3, 30, 3, dtype=torch.float64) * 2 - 1
    mse, grad = siren.loss_and_grad(params.detach(), arch, coords, target)
    reference = (siren.forward(params, arch, coords) - target).square().mean(dim=(1, 2))
    reference.sum().backward()
    assert torch.allclose(mse, reference.detach(), atol=1e-12)
    assert torch.allclose(grad, params.grad, atol=1e-10)


def test_fit_improves_and_chunking_does_not_change_the_result(tiny_images):
    arch = Arch(2, 8, 3)
    whole = fit(tiny_images, arch, FitConfig(steps=40, chunk_size=8), progress=False)
    chunked = fit(tiny_images, arch, FitConfig(steps=40, chunk_size=3), progress=False)
    assert torch.allclose(whole.params, chunked.params, atol=1e-5)
    assert whole.train_psnr.min() > 12  # far above the ~8 dB of the initial near-zero output


def test_early_stop_at_target_psnr_saves_image_steps(tiny_images):
    arch = Arch(2, 8, 3)
    full = fit(tiny_images, arch, FitConfig(steps=120), progress=False)
    target = float(full.train_psnr.median()) - 2
    early = fit(tiny_images, arch, FitConfig(steps=120, target_psnr=target), progress=False)
    assert early.image_steps < full.image_steps
    assert (early.train_psnr >= target).all()


def test_mask_keeps_pruned_weights_exactly_zero(tiny_images):
    arch = Arch(2, 8, 3)
    mask = (torch.rand(8, arch.n_params, generator=torch.Generator().manual_seed(1)) > 0.3).float()
    out = fit(tiny_images, arch, FitConfig(steps=30), mask=mask, progress=False)
    assert (out.params[mask == 0] == 0).all()
    assert (out.params[mask == 1] != 0).float().mean() > 0.99


def test_save_load_round_trip_is_exact(tiny_set, tmp_path):
    path = tmp_path / "set.rinr"
    size = tiny_set.save(path)
    assert size == path.stat().st_size
    back = load(path)
    assert torch.equal(back.dense_params(), tiny_set.dense_params())
    assert torch.equal(back.labels, tiny_set.labels)
    assert torch.equal(back.psnr, tiny_set.psnr)
    assert back.class_names == ["a", "b", "c", "d"]
    assert back.arch == tiny_set.arch and (back.height, back.width) == (12, 10)
    assert torch.equal(back.decode(), tiny_set.decode())


def test_decode_at_training_size_equals_the_fit_forward(tiny_set, tiny_images):
    coords = siren.coordinate_grid(12, 10)
    raw = siren.forward(tiny_set.dense_params(), tiny_set.arch, coords)  # (N, HW, C) as in the fit
    mse, _ = siren.loss_and_grad(tiny_set.dense_params(), tiny_set.arch, coords, images_to_targets(tiny_images))
    decoded = tiny_set.decode()  # (N, C, H, W)
    expected = ((raw + 1) / 2).clamp(0, 1).permute(0, 2, 1).reshape(8, 3, 12, 10)
    assert torch.equal(decoded, expected)
    # The fit's loss is the MSE of exactly this output on the [-1, 1] scale.
    assert torch.allclose(mse, (raw - images_to_targets(tiny_images)).square().mean(dim=(1, 2)), atol=1e-6)


def test_decode_at_twice_the_size_samples_the_same_function(tiny_set):
    double = tiny_set.decode(size=(24, 20))
    assert double.shape == (8, 3, 24, 20)
    assert double.min() >= 0 and double.max() <= 1
    # A 2x decode, averaged over each 2x2 block, is close to the 1x decode (same continuous image).
    pooled = torch.nn.functional.avg_pool2d(double, 2)
    assert (pooled - tiny_set.decode()).abs().mean() < 0.06
    assert tiny_set.decode([2, 5], size=7).shape == (2, 3, 7, 7)


def test_psnr_is_computed_on_8bit_images():
    a = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    b = torch.full((1, 1, 4, 4), 1 / 255)  # float that rounds to 1
    assert torch.allclose(psnr(a, b), torch.tensor([10 * math.log10(255**2)]))
    assert psnr(a, a).item() == 100.0


def test_encode_info_decode_cli_agree_with_an_independent_psnr(tmp_path, capsys):
    folder = tmp_path / "imgs"
    for cls in ("cat", "dog"):
        (folder / cls).mkdir(parents=True)
    rng = np.random.default_rng(0)
    originals = {}
    for i in range(5):
        array = (rng.random((9, 11, 3)) * 80 + np.linspace(0, 170, 11)[None, :, None]).astype(np.uint8)
        name = f"{'cat' if i < 3 else 'dog'}/img{i}.png"
        Image.fromarray(array).save(folder / name)
        originals[name] = array
    out = tmp_path / "set.rinr"
    assert main(["encode", str(folder), "-o", str(out), "--arch", "2x10", "--steps", "80", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    for key in ("format_version", "images", "height", "width", "channels", "arch", "params_per_image",
                "file_bytes", "bytes_per_image", "bpp", "psnr_mean", "quant_bits", "sparsity"):
        assert key in info
    assert info["file_bytes"] == out.stat().st_size
    assert info["images"] == 5 and (info["height"], info["width"], info["channels"]) == (9, 11, 3)
    assert info["bpp"] == pytest.approx(8 * info["file_bytes"] / (5 * 9 * 11))
    assert main(["decode", str(out), "-o", str(tmp_path / "png")]) == 0
    values = []
    for index, name in enumerate(sorted(originals)):  # lexicographic order of relative paths
        decoded = np.asarray(Image.open(tmp_path / "png" / f"{index:06d}.png"), dtype=np.float64)
        mse = np.mean((decoded - originals[name].astype(np.float64)) ** 2)
        values.append(10 * np.log10(255**2 / mse))
    assert abs(np.mean(values) - info["psnr_mean"]) < 0.05
    assert load(out).labels.tolist() == [0, 0, 0, 1, 1]


def test_decode_cli_writes_requested_indices_at_a_size(tiny_set, tmp_path):
    path = tmp_path / "s.rinr"
    tiny_set.save(path)
    assert main(["decode", str(path), "-o", str(tmp_path / "d"), "--indices", "1,3", "--size", "24x20"]) == 0
    names = sorted(p.name for p in (tmp_path / "d").iterdir())
    assert names == ["000001.png", "000003.png"]
    assert Image.open(tmp_path / "d" / "000003.png").size == (20, 24)
