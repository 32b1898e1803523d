"""Learned initialization: Reptile over stacked weights, the init file, encode --init, meta-init."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rapidinr.cli import main
from rapidinr.codec.inrset import load
from rapidinr.core import siren
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.errors import UserError
from rapidinr.encoding.fit import fit
from rapidinr.encoding.init_tuning import no_worse, paired_gain, recommend_fit, steps_to_reach
from rapidinr.encoding.learned_init import (
    LearnedInit,
    MetaConfig,
    load_init,
    meta_learn,
    resolve_init,
    save_init,
    shipped_inits,
)
from rapidinr.sources.datasets import load_source


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


def test_learned_picks_the_cifar10_rgb_init_and_learned_data_picks_by_training_data():
    rgb = Arch.parse("3x15", 3)  # CIFAR-10's init measured better on held-out Kodak photos (data/INIT.md)
    assert resolve_init("learned", rgb, 32, 32).info["file"] == "init-cifar10-3x15-32x32.safetensors"
    assert resolve_init("learned:kodak", rgb, 32, 32).info["file"] == "init-kodak-3x15-32x32.safetensors"
    assert resolve_init("learned:cifar10", rgb, 32, 32).info["file"] == "init-cifar10-3x15-32x32.safetensors"
    assert resolve_init("learned:default", Arch.parse("3x15", 1), 28, 28).info["file"] == \
        "init-default-3x15-28x28.safetensors"
    with pytest.raises(UserError, match=r"--init learned:imagenet: no learned init from 'imagenet' ships; "
                                        r"learned:DATA takes one of cifar10, default, kodak"):
        resolve_init("learned:imagenet", rgb, 32, 32)
    with pytest.raises(UserError, match=r"--init learned:kodak: no learned init ships for arch 3x15 at 28x28"):
        resolve_init("learned:kodak", rgb, 28, 28)


def test_kodak_init_trained_on_photos_1_to_16_only():
    init = resolve_init("learned:kodak", Arch.parse("3x15", 3), 32, 32)
    assert init.info["source"].startswith("kodak/4@1-16-crops:32x32:")  # kodim17..24 stay unseen: the test photos
    assert init.info["command"].startswith("rapidinr meta-init kodak/4@1-16:")
    assert init.info["fit"]["held_out"].startswith("the last 32 images of kodak/4@1-16-crops")


def test_unknown_learned_data_from_the_cli_is_one_line_exit_2(tmp_path, capsys):
    out = tmp_path / "x.rinr"
    assert main(["encode", "samples-crops", "--limit", "2", "-o", str(out), "--steps", "5", "--quiet",
                 "--init", "learned:imagenet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "learned:imagenet" in err and not out.exists()


@pytest.mark.parametrize("size", [28, 32])
def test_shipped_default_inits_have_their_command_and_fit_and_beat_random_on_test_images(size):
    names = [p.name for p in shipped_inits()]
    assert f"init-default-3x15-{size}x{size}.safetensors" in names
    arch = Arch.parse("3x15", 1)
    init = resolve_init("learned", arch, size, size)
    assert init.info["command"].startswith("rapidinr meta-init default")
    assert init.info["split"] == "train"  # made from the training split; measured on the test split
    fit_info = init.info["fit"]  # chosen on held-out training images, never meta-trained on
    assert init.info["images"] + fit_info["validation_images"] == 4000
    assert init.recommended_fit == {"lr": fit_info["lr"], "steps": fit_info["steps"]}
    assert fit_info["psnr_mean"] >= fit_info["reference"]["psnr_mean"]
    assert fit_info["psnr_8bit_mean"] >= fit_info["reference"]["psnr_8bit_mean"]  # as stored, too
    chosen = next(c for c in fit_info["candidates"] if (c["lr"], c["steps"]) == (fit_info["lr"], fit_info["steps"]))
    for gain in (chosen["gain_db"], chosen["gain_8bit_db"]):  # image by image, beyond the noise
        assert gain["mean"] - fit_info["margin_se"] * gain["se"] >= 0 and fit_info["margin_se"] >= 1
    assert "--max-hidden-weight 4.0" in init.info["command"]
    held_back = load_source("default", None if size == 28 else (size, size), "test", False, False, 12, 0).images
    learned = _psnr_after(held_back, arch, init.params, 30)
    random = _psnr_after(held_back, arch, None, 30)
    assert learned > random + 2, (learned, random)


def test_steps_to_reach_is_the_first_traced_step_at_or_above_each_target():
    trace = {0: {10: 20.0, 20: 30.0, 30: 31.0}, 1: {10: 5.0, 20: 6.0}}
    steps = steps_to_reach(trace, torch.tensor([30.0, 10.0, 1.0]))  # image 2 was never traced
    assert steps[0] == 20 and math.isinf(steps[1]) and math.isinf(steps[2])


def test_a_gain_within_its_noise_does_not_qualify_a_fit_schedule():
    reference = torch.tensor([30.0, 31.0, 29.0, 33.0])
    noisy = paired_gain(reference + torch.tensor([0.1, -0.1, 0.3, -0.2]), reference)  # mean +0.025 dB
    assert noisy["mean"] == pytest.approx(0.025) and noisy["se"] == pytest.approx(0.111, abs=1e-3)
    assert no_worse(noisy, 0.0) and not no_worse(noisy, 1.0)
    steady = paired_gain(reference + torch.tensor([0.4, 0.5, 0.6, 0.5]), reference)
    assert no_worse(steady, 1.0) and no_worse(steady, 2.0)
    assert paired_gain(reference[:1] + 1, reference[:1]) == {"mean": 1.0, "se": None}
    assert no_worse({"mean": 0.2, "se": None}, 1.0) and not no_worse({"mean": -0.2, "se": None}, 1.0)


def test_recommend_fit_picks_the_fewest_median_steps_among_fits_as_good_as_the_reference():
    arch = Arch.parse("2x8", 1)
    theta, _ = meta_learn(_family(48, seed=0), arch, MetaConfig(outer_steps=30, inner_steps=4, meta_batch=8),
                          progress=False)
    reference = FitConfig(steps=60, lr=1e-3, check_every=5)
    rec = recommend_fit(_family(6, seed=2), arch, theta, lrs=(1e-3, 5e-3), schedules=(10, 40),
                        reference=reference, progress=False)
    json.dumps(rec, allow_nan=False)  # stored in a JSON header: no NaN or infinity
    assert len(rec["candidates"]) == 4 and rec["reference"]["steps"] == 60
    margin = rec["margin_se"]
    good = [c for c in rec["candidates"] if all(c[key]["mean"] - margin * c[key]["se"] >= 0
                                                for key in ("gain_db", "gain_8bit_db"))]
    assert good, rec  # from a learned init, some short schedule matches the random 60-step fit
    chosen = next(c for c in good if (c["lr"], c["steps"]) == (rec["lr"], rec["steps"]))
    assert chosen["median_steps"] == min(c["median_steps"] or math.inf for c in good)
    assert rec["speedup_vs_reference"] == round(60 / chosen["median_steps"], 2) > 1


def test_refit_after_divergence_restarts_from_the_given_init(monkeypatch):
    arch = Arch.parse("2x8", 1)
    init = siren.init_params(arch, [5])[0]  # (P,)

    def no_random_draw(*args, **kwargs):
        raise AssertionError("a fit from a given init drew a random SIREN init")

    monkeypatch.setattr(siren, "init_params", no_random_draw)
    result = fit(_family(3), arch, FitConfig(steps=120, lr=0.9, max_refits=1), init=init, progress=False)
    assert result.refits > 0  # the rate is absurd: every fit collapses and is refitted from `init`


@pytest.mark.slow
def test_cli_meta_init_then_encode_with_it(tmp_path, capsys):
    init_path = tmp_path / "init.safetensors"
    code = main(["meta-init", "default", "-o", str(init_path), "--limit", "32", "--outer-steps", "3",
                 "--inner-steps", "2", "--meta-batch", "8", "--quiet", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    made = load_init(init_path)
    assert made.info["command"].startswith("rapidinr meta-init default -o")
    assert "--outer-steps 3" in made.info["command"] and "--validate 8" in made.info["command"]
    assert made.info["images"] == 24 and made.info["fit"]["validation_images"] == 8  # a quarter held out
    recommended = made.recommended_fit
    out = tmp_path / "a.rinr"
    code = main(["encode", "default", "-o", str(out), "--limit", "4", "--steps", "5", "--init",
                 str(init_path), "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    assert load(out).meta["fit"]["steps"] == 5 and load(out).meta["fit"]["lr"] == recommended["lr"]
    assert f"--lr {recommended['lr']:g}" in capsys.readouterr().err  # says which setting it took
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


def test_encode_takes_the_init_recommendation_only_where_no_option_is_given(tmp_path, capsys):
    arch = Arch.parse("3x15", 1)
    info = {"source": "test", "fit": {"lr": 4e-3, "steps": 6}}
    path = tmp_path / "init.safetensors"
    save_init(path, LearnedInit(siren.init_params(arch, [1])[0], arch, 28, 28, info))
    common = ["encode", "default", "--limit", "2", "--init", str(path), "--quiet", "--device", "cpu"]
    assert main([*common, "-o", str(tmp_path / "a.rinr")]) == 0
    assert {k: load(tmp_path / "a.rinr").meta["fit"][k] for k in ("lr", "steps")} == {"lr": 4e-3, "steps": 6}
    assert main([*common, "-o", str(tmp_path / "b.rinr"), "--lr", "2e-3", "--steps", "4"]) == 0
    assert {k: load(tmp_path / "b.rinr").meta["fit"][k] for k in ("lr", "steps")} == {"lr": 2e-3, "steps": 4}
    for bad in ({"lr": 5, "steps": 6}, {"lr": 1e-3, "steps": 0}, {"lr": "fast", "steps": 6}, [1]):
        save_init(path, LearnedInit(siren.init_params(arch, [1])[0], arch, 28, 28, {"fit": bad}))
        with pytest.raises(UserError, match="fit recommendation"):
            load_init(path)
        assert main([*common, "-o", str(tmp_path / "c.rinr"), "--overwrite"]) == 2
        assert "fit recommendation" in capsys.readouterr().err and not (tmp_path / "c.rinr").exists()


@pytest.mark.slow
def test_learned_init_benchmark_runs_in_its_quick_mode(tmp_path):
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "learned_init.py"
    out = tmp_path / "li.json"
    done = subprocess.run([sys.executable, str(script), "--quick", "--out", str(out)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())["results"]
    assert set(results["steps_to_target"]) == {"random", "learned_same_schedule", "learned_recommended"}
    assert results["end_to_end"]["random"]["reached"] >= 1 and "x fewer" in done.stdout


@pytest.mark.slow
def test_learned_init_benchmark_on_held_out_kodak_photos_compares_both_rgb_inits(tmp_path):
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "learned_init.py"
    kodak = next((d for d in (Path(__file__).resolve().parents[k] / "shared" / "data" / "kodak" for k in (2, 3))
                  if d.is_dir()), None)
    if kodak is None:
        pytest.skip("no ../shared/data/kodak")
    out = tmp_path / "li.json"
    done = subprocess.run([sys.executable, str(script), "--source", "kodak", "--kodak", str(kodak), "--quick",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert doc["settings"]["held_back"].startswith("kodak/4@17-24")  # photos the Kodak init never saw
    assert doc["settings"]["init"].startswith("init-kodak-3x15-32x32")
    compared = doc["results"]["compare_init"]
    assert compared["init"] == "init-cifar10-3x15-32x32.safetensors"
    assert set(compared) >= {"same_schedule", "recommended"} and compared["same_schedule"]["final_psnr"] > 20


def test_cli_meta_init_bad_inputs(tmp_path, capsys):
    assert main(["meta-init", "default", "-o", str(tmp_path / "x.bin"), "--limit", "4"]) == 2
    assert "safetensors" in capsys.readouterr().err
    assert main(["meta-init", "default", "-o", str(tmp_path / "y.safetensors"), "--outer-steps", "0"]) == 2
    assert "--outer-steps" in capsys.readouterr().err
    assert main(["meta-init", "default", "-o", str(tmp_path / "z.safetensors"), "--validate", "-1"]) == 2
    assert "--validate" in capsys.readouterr().err
    assert main(["meta-init", "default", "-o", str(tmp_path / "z.safetensors"), "--limit", "4",
                 "--validate", "4"]) == 2
    assert "--validate 4" in capsys.readouterr().err and not (tmp_path / "z.safetensors").exists()
    assert not (tmp_path / "y.safetensors").exists()
    json.dumps(MetaConfig().__dict__)  # the config is plain data (recorded in the file header)
