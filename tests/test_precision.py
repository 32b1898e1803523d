"""The fit's arithmetic precision: the tf32 setting, and the emulations that measure TF32/bfloat16."""
from __future__ import annotations

import json

import pytest
import torch

from rapidinr.cli import main
from rapidinr.codec.inrset import load
from rapidinr.core import siren
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.errors import UserError
from rapidinr.core.precision import bfloat16_loss_and_grad, emulated_matmul_operands, matmul_precision, round_mantissa
from rapidinr.encoding.fit import fit
from rapidinr.sources.datasets import load_source

FAST = ["--arch", "1x4", "--steps", "5", "--quiet", "--limit", "3"]


def test_round_mantissa_rounds_to_nearest_at_the_given_width():
    one = torch.tensor([1.0])
    half_ulp_10 = 2.0 ** -11  # half of TF32's last place at 1.0
    assert round_mantissa(one + half_ulp_10 / 2, 10).item() == 1.0
    assert round_mantissa(one + half_ulp_10, 10).item() == 1.0 + 2.0 ** -10  # a tie goes away from zero
    assert round_mantissa(-(one + half_ulp_10 * 1.5), 10).item() == -(1.0 + 2.0 ** -10)
    exact = torch.tensor([0.0, -0.0, 1.5, -3.25, 2.0 ** -20, 1024.0])  # already representable: unchanged
    assert torch.equal(round_mantissa(exact, 10), exact)
    # 7 bits is bfloat16: the same value torch's own conversion gives, except at exact ties
    # (torch rounds those to even), which are excluded
    x = torch.randn(4096, generator=torch.Generator().manual_seed(0)) * 100
    ties = (x.view(torch.int32) & 0xFFFF) == 0x8000
    assert torch.equal(round_mantissa(x, 7)[~ties], x.bfloat16().float()[~ties])
    with pytest.raises(ValueError):
        round_mantissa(x.double(), 7)


def test_emulated_operands_round_every_bmm_and_restore_it():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 5, 7, generator=g), torch.randn(2, 7, 3, generator=g)
    exact_bmm = torch.bmm
    with emulated_matmul_operands("tf32"):
        assert torch.bmm is not exact_bmm
        inside = torch.bmm(a, b)
        out = torch.empty(2, 5, 3)
        torch.bmm(a, b, out=out)  # the kernel's out= form too
    assert torch.bmm is exact_bmm
    expected = exact_bmm(round_mantissa(a, 10), round_mantissa(b, 10))
    assert torch.equal(inside, expected) and torch.equal(out, expected)
    assert not torch.equal(inside, exact_bmm(a, b))  # the rounding is real
    assert torch.allclose(inside, exact_bmm(a, b), rtol=1e-2, atol=1e-2)


def test_bfloat16_loss_and_grad_is_close_returns_float32_and_is_undone():
    arch = Arch.parse("2x8", 1)
    params = siren.init_params(arch, range(3))  # (3, P)
    coords = siren.coordinate_grid(6, 6)  # (36, 2)
    target = torch.rand(3, 36, 1) * 2 - 1  # (3, 36, 1) on [-1, 1]
    exact_mse, exact_grad = siren.loss_and_grad(params, arch, coords, target)
    kernel = siren.loss_and_grad
    with bfloat16_loss_and_grad():
        mse, grad = siren.loss_and_grad(params, arch, coords, target)
    assert siren.loss_and_grad is kernel
    assert mse.dtype == grad.dtype == torch.float32 and grad.shape == exact_grad.shape
    assert torch.allclose(mse, exact_mse, rtol=5e-2)
    assert not torch.equal(grad, exact_grad)
    assert torch.nn.functional.cosine_similarity(grad, exact_grad).min() > 0.95


def test_the_fit_runs_its_matmuls_in_the_precision_asked_and_restores_the_setting(monkeypatch):
    images = load_source("default", None, "train", False, False, 4, 0).images  # (4, 1, 28, 28)
    arch = Arch.parse("1x4", 1)
    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision
    try:
        # the new fp32_precision API used first: the legacy allow_tf32 flag would now raise if read
        matmul.fp32_precision = "tf32"
        seen = []
        kernel = siren.loss_and_grad

        def spy(*args, **kwargs):
            seen.append(matmul.fp32_precision)
            return kernel(*args, **kwargs)

        monkeypatch.setattr(siren, "loss_and_grad", spy)
        tf32 = fit(images, arch, FitConfig(steps=6, precision="tf32"), progress=False)
        fp32 = fit(images, arch, FitConfig(steps=6), progress=False)
        assert seen and set(seen) == {"tf32"}  # the CPU: nothing touched, whatever the fit asks
        # the CPU multiplies in float32 whatever the setting: the same weights bit for bit
        assert torch.equal(tf32.params, fp32.params)
        with matmul_precision("fp32", "cuda"):  # on CUDA, fp32 means fp32 where the process enabled TF32
            assert matmul.fp32_precision == "ieee"
            with matmul_precision("tf32", "cuda"):
                assert matmul.fp32_precision == "tf32"
            assert matmul.fp32_precision == "ieee"
        assert matmul.fp32_precision == "tf32"
    finally:
        matmul.fp32_precision = before


def test_the_first_layer_never_goes_through_a_tf32_matmul_on_cuda(monkeypatch):
    arch = Arch.parse("2x8", 3)
    params = siren.init_params(arch, range(3))  # (3, P)
    coords = siren.coordinate_grid(6, 6)  # (36, 2)
    target = torch.rand(3, 36, 3) * 2 - 1
    exact_mse, exact_grad = siren.loss_and_grad(params, arch, coords, target)
    inner = []
    bmm = torch.bmm

    def spy(a, b, *, out=None):
        inner.append(2 in a.shape[-2:])  # the coordinates (n, P, 2), or transposed (n, 2, P)
        return bmm(a, b, out=out)

    monkeypatch.setattr(torch, "bmm", spy)
    siren.loss_and_grad(params, arch, coords, target)
    assert inner.count(True) == 2  # on the CPU: the first layer's forward and weight gradient are bmms
    inner.clear()
    monkeypatch.setattr(siren, "exact_first_layer", lambda device: True)  # CUDA's path, run on the CPU
    mse, grad = siren.loss_and_grad(params, arch, coords, target)
    assert inner and not any(inner)  # no matmul reads the coordinates
    torch.testing.assert_close(mse, exact_mse)
    torch.testing.assert_close(grad, exact_grad)


def test_precision_option_is_recorded_and_a_bad_one_is_one_clear_error(tmp_path, capsys):
    out = tmp_path / "t.rinr"
    assert main(["encode", "default", "-o", str(out), *FAST, "--precision", "tf32"]) == 0
    assert load(out).meta["fit"]["precision"] == "tf32"
    capsys.readouterr()
    bad = tmp_path / "b.rinr"
    assert main(["encode", "default", "-o", str(bad), *FAST, "--precision", "bf16"]) == 2
    err = capsys.readouterr().err
    assert "--precision" in err and "fp32, tf32" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not bad.exists()
    with pytest.raises(UserError, match="--precision"):
        FitConfig(precision="fp16")


@pytest.mark.slow
def test_precision_benchmark_quick_mode(tmp_path, benchmark_script):
    benchmark_script("precision").main(["--quick", "--out", str(tmp_path / "p.json")])
    results = json.loads((tmp_path / "p.json").read_text())["results"]
    assert set(results) == {"fashion-mnist-test@32x32", "photo-crops@32x32"}
    for rows in results.values():
        assert set(rows) == {"fp32", "tf32", "bf16-matmul", "bf16"}
        assert rows["fp32"]["delta_db"] == 0 and all(abs(r["delta_db"]) < 1 for r in rows.values())
