"""``rapidinr demo``: the learned init's recommended fit, and the RGB photo crops printed honestly."""
from __future__ import annotations

import re

import pytest

from rapidinr.cli import main
from rapidinr.core.config import Arch, FitConfig
from rapidinr.encoding.runner import encode_to_file
from rapidinr.sources.datasets import ImageSet, load_default
from rapidinr.study.demo import demo


def test_encode_to_file_applies_the_learned_inits_recommended_fit(tmp_path):
    images = load_default("train").images[:1]  # (1, 1, 28, 28)
    arch = Arch.parse("3x15", 1)
    inrs = encode_to_file(ImageSet(images), tmp_path / "a.rinr", arch, FitConfig(steps=20), "cpu", progress=False,
                          init="learned")
    assert (inrs.meta["fit"]["steps"], inrs.meta["fit"]["lr"]) == (500, 0.005)  # data/INIT.md's recommendation
    pinned = encode_to_file(ImageSet(images), tmp_path / "b.rinr", arch, FitConfig(steps=20), "cpu", progress=False,
                            init="learned", steps=20, lr=2e-3)
    assert (pinned.meta["fit"]["steps"], pinned.meta["fit"]["lr"]) == (20, 2e-3)
    random = encode_to_file(ImageSet(images), tmp_path / "c.rinr", arch, FitConfig(steps=20), "cpu", progress=False)
    assert (random.meta["fit"]["steps"], random.meta["fit"]["lr"]) == (20, FitConfig.lr)


def test_demo_prints_the_photo_crops_against_raw_png_and_jpeg(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path), "--images", "2", "--crops", "3", "--steps", "5", "--arch", "1x4",
                 "--no-figures", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "3 RGB photo crops (32x32" in out
    inr = re.search(r"INR \.rinr \(8-bit hidden layers\)\s+(\d+)\s+([\d.]+)", out)
    raw = re.search(r"raw pixels\s+(\d+)\s+lossless", out)
    png = re.search(r"PNG \(lossless\)\s+(\d+)\s+lossless", out)
    same = re.search(r"JPEG at the INR's bytes \(q~\d+\)\s+(\d+)\s+([\d.]+)", out)
    assert inr and raw and png and same and "JPEG quality 75" in out
    assert int(raw.group(1)) == 3 * 32 * 32
    assert int(same.group(1)) <= int(inr.group(1)) + 1  # JPEG matched to the INR's own bytes, not more
    # the verdict line is computed from the rows, whichever way it falls
    gap = float(same.group(2)) - float(inr.group(2))
    assert (f"JPEG is {gap:.1f} dB better" if gap > 0 else f"the INR is {-gap:.1f} dB better") in out
    assert (tmp_path / "demo-photo-crops.rinr").is_file()


def test_demo_uses_the_recommended_fit_and_quick_skips_figures(tmp_path, capsys):
    info = demo(tmp_path, images=1, arch="3x15", device="cpu", figures=False, crops=0)
    out = capsys.readouterr().out
    assert "500 Adam steps at lr 0.005 (the learned init's recommendation)" in out
    assert "photo_crops" not in info and not (tmp_path / "figures").exists()


@pytest.mark.parametrize("argv, message", [(["--crops", "-1"], "--crops"), (["--steps", "0"], "--steps")])
def test_demo_bad_options(tmp_path, capsys, argv, message):
    assert main(["demo", "-o", str(tmp_path), "--images", "1", *argv]) == 2
    assert message in capsys.readouterr().err


