"""Learned initialization: Reptile over stacked weights, the init file, encode --init, meta-init."""
from __future__ import annotations

import json

import pytest
import torch

from rapidinr import siren
from rapidinr.cli import main
from rapidinr.config import Arch, FitConfig
from rapidinr.data import load_default
from rapidinr.errors import UserError
from rapidinr.fit import fit
from rapidinr.inrset import load
from rapidinr.meta import (LearnedInit, MetaConfig, load_init, meta_learn, resolve_init, save_init,
                           shipped_inits)


def _family(n, size=8, seed=0):
    """Images of one kind: a shared gradient-and-blob pattern with small per-image changes."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    base = 0.5 + 0.3 * xs - 0.2 * ys + 0.3 * torch.exp(-(xs**2 + ys**2) * 3)
    shift = torch.rand(n, 1, 1, 1, generator=g) * 0.2 - 0.1
    noise = torch.rand(n, 1, size, size, generator=g) * 0.04
    return ((base + shift + noise).clamp(0, 1) * 255).round().to(torch.uint8)  # (n, 1, size, size)


def _psnr_after(images, arch, init, steps):
    result = fit(images, arch, FitConfig(steps=steps, keep_best=False), init=init, progress=False)
    return result.train_psnr.mean().item()


def test_reptile_init_beats_random_init_on_held_back_images_of_the_same_kind():
    arch = Arch.parse("2x8", 1)
    train, held_back = _family(48, seed=0), _family(8, seed=1)
    theta, curve = meta_learn(train, arch, MetaConfig(outer_steps=40, inner_steps=4, meta_batch=8),
                              progress=False)
    assert theta.shape == (arch.n_params,) and torch.isfinite(theta).all()
    assert curve[-1] > curve[0] + 3  # the inner loop ends far better from the learned init
    learned = _psnr_after(held_back, arch, theta, 10)
    random = _psnr_after(held_back, arch, None, 10)
    assert learned > random + 3, (learned, random)


def test_shared_init_is_broadcast_to_every_image():
    arch = Arch.parse("2x8", 1)
    images = _family(3)
    init = siren.init_params(arch, [9])[0]  # (P,)
    cfg = FitConfig(steps=5, keep_best=False)
    shared = fit(images, arch, cfg, init=init, progress=False)
    rows = fit(images, arch, cfg, init=init.expand(3, -1).clone(), progress=False)
    assert torch.equal(shared.params, rows.params)


def test_init_file_round_trip_and_checks(tmp_path):
    arch = Arch.parse("3x15", 1)
    init = LearnedInit(siren.init_params(arch, [3])[0], arch, 28, 28, {"source": "default:train", "command": "x"})
    path = tmp_path / "init.safetensors"
    save_init(path, init)
    back = load_init(path)
    assert torch.equal(back.params, init.params) and back.arch == arch
    assert (back.height, back.width) == (28, 28) and back.info["source"] == "default:train"
    assert back.sha256 == init.sha256
    with pytest.raises(UserError, match="3x15"):
        back.check_fits(Arch.parse("2x15", 1), 28, 28)
    with pytest.raises(UserError, match="--size 28x28"):
        back.check_fits(arch, 32, 32)
    with pytest.raises(UserError, match="channel"):
        back.check_fits(Arch.parse("3x15", 3), 28, 28)
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF
    (tmp_path / "bad.safetensors").write_bytes(bytes(raw))
    with pytest.raises(UserError, match="corrupt"):
        load_init(tmp_path / "bad.safetensors")


def test_resolve_init_random_learned_and_errors(tmp_path):
    gray = Arch.parse("3x15", 1)
    assert resolve_init("random", gray, 28, 28) is None
    assert resolve_init(None, gray, 28, 28) is None
    with pytest.raises(UserError, match="meta-init"):
        resolve_init("learned", gray, 17, 17)
    with pytest.raises(UserError, match="no such file"):
        resolve_init(str(tmp_path / "missing.safetensors"), gray, 28, 28)


def test_shipped_default_init_has_its_command_and_beats_random_on_test_images():
    names = [p.name for p in shipped_inits()]
    assert "init-default-3x15-28x28.safetensors" in names
    arch = Arch.parse("3x15", 1)
    init = resolve_init("learned", arch, 28, 28)
    assert init.info["command"].startswith("rapidinr meta-init default")
    assert init.info["split"] == "train"  # made from the training split; measured on the test split
    held_back = load_default("test").images[:12]
    learned = _psnr_after(held_back, arch, init.params, 30)
    random = _psnr_after(held_back, arch, None, 30)
    assert learned > random + 2, (learned, random)


def test_cli_meta_init_then_encode_with_it(tmp_path, capsys):
    init_path = tmp_path / "init.safetensors"
    code = main(["meta-init", "default", "-o", str(init_path), "--limit", "32", "--outer-steps", "3",
                 "--inner-steps", "2", "--meta-batch", "8", "--quiet", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    made = load_init(init_path)
    assert made.info["command"].startswith("rapidinr meta-init default -o")
    assert "--outer-steps 3" in made.info["command"]
    out = tmp_path / "a.rinr"
    code = main(["encode", "default", "-o", str(out), "--limit", "4", "--steps", "5", "--init",
                 str(init_path), "--quiet", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    header_init = load(out).meta["init"]
    assert header_init["kind"] == "learned" and header_init["sha256"] == made.sha256
    assert header_init["file"] == "init.safetensors"
    # the default encode records that it started from the random init
    code = main(["encode", "default", "-o", str(tmp_path / "b.rinr"), "--limit", "2", "--steps", "3",
                 "--quiet", "--device", "cpu"])
    assert code == 0 and load(tmp_path / "b.rinr").meta["init"]["kind"] == "random"


@pytest.mark.parametrize("argv, message", [
    (["--init", "nowhere.safetensors"], "no such file"),
    (["--init", "learned", "--size", "20x20"], "meta-init"),
])
def test_cli_bad_init_is_one_clear_error_and_no_output(tmp_path, capsys, argv, message):
    out = tmp_path / "x.rinr"
    code = main(["encode", "default", "-o", str(out), "--limit", "2", "--steps", "2", "--quiet",
                 "--device", "cpu", *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not out.exists()


def test_cli_meta_init_bad_inputs(tmp_path, capsys):
    assert main(["meta-init", "default", "-o", str(tmp_path / "x.bin"), "--limit", "4"]) == 2
    assert "safetensors" in capsys.readouterr().err
    assert main(["meta-init", "default", "-o", str(tmp_path / "y.safetensors"), "--outer-steps", "0"]) == 2
    assert "--outer-steps" in capsys.readouterr().err
    assert not (tmp_path / "y.safetensors").exists()
    json.dumps(MetaConfig().__dict__)  # the config is plain data (recorded in the file header)
