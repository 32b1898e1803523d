"""`rapidinr encode` compression options, `info --json`, `rapidinr rd`, and their bad inputs."""
import json
import os

import pytest
import torch
from PIL import Image

from rapidinr.cli import main
from rapidinr.codec.inrset import load

FAST = ["--steps", "30", "--quiet", "--arch", "2x8"]


@pytest.fixture()
def folder(tmp_path, tiny_images):
    root = tmp_path / "imgs"
    root.mkdir()
    for i, image in enumerate(tiny_images[:4]):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(root / f"{i:02d}.png")
    return root


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_encode_with_compression_options_and_info_json(tmp_path, folder, capsys):
    out = tmp_path / "c.rinr"
    code, _, err = run(["encode", folder, "-o", out, *FAST, "--dynamic-prune", "10:0.2,60:0.4",
                        "--prune-l1", "0.1", "--retrain-steps", "10", "--quant-bits", "8",
                        "--quant-layers", "hidden", "--quant-bias-bits", "16", "--lossless", "zstd"], capsys)
    assert code == 0, err
    code, text, _ = run(["info", out, "--json"], capsys)
    info = json.loads(text)
    assert info["quant_bits"] == 8 and info["quant_layers"] == "hidden"
    assert info["file_bytes"] == os.path.getsize(out)
    inrs = load(out)
    weight_zeros = float((inrs.dense_params() == 0).float().mean())
    assert info["sparsity"] == pytest.approx(weight_zeros, abs=1e-5) and info["sparsity"] >= 0.15
    assert inrs.store.codes.dtype == torch.int8 and inrs.store.wide.dtype == torch.int16
    assert inrs.meta["compression"]["prune"]["l1_ratio"] == 0.1
    # the same images, plain: still dense and larger
    plain = tmp_path / "p.rinr"
    assert run(["encode", folder, "-o", plain, *FAST], capsys)[0] == 0
    plain_info = json.loads(run(["info", plain, "--json"], capsys)[1])
    assert plain_info["quant_bits"] == 32 and plain_info["param_encoding"] == "dense-f32"
    from rapidinr.codec import fileformat

    def weight_bytes(path):  # the payload without the JSON header, which dominates 4 tiny images
        _, tensors, _ = fileformat.read(path)
        return sum(t.numel() * t.element_size() for k, t in tensors.items() if k not in ("psnr", "labels"))

    assert weight_bytes(plain) > 1.5 * weight_bytes(out)  # 2x8: most weights are in the float32 layers


@pytest.mark.parametrize("options,needle", [
    (["--dynamic-prune", "35:0.1,30:0.2"], "strictly increase"),
    (["--dynamic-prune", "cifar11"], "--dynamic-prune"),
    (["--dynamic-prune", "30:1.5"], "[0, 1)"),
    (["--prune-l1", "1"], "[0, 1)"),
    (["--prune-l1", "-0.1"], "[0, 1)"),
    (["--quant-bits", "4"], "8 or 16"),
    (["--quant-bits", "8", "--quant-layers", "first"], "--quant-layers"),
    (["--quant-layers", "all"], "--quant-bits"),
    (["--quant-bits", "16", "--quant-bias-bits", "8"], "--quant-bias-bits"),
    (["--retrain-steps", "100"], "no masks to retrain"),
    (["--lossless", "gzip"], "--lossless"),
])
def test_bad_compression_options(tmp_path, folder, capsys, options, needle):
    out = tmp_path / "o.rinr"
    code, _, err = run(["encode", folder, "-o", out, *FAST, *options], capsys)
    assert code == 2
    assert needle in err and err.startswith("rapidinr: error:") and err.count("\n") == 1
    assert not out.exists() and not list(tmp_path.glob("o.rinr*"))


def test_compression_options_on_a_rinr_file(tmp_path, tiny_set, capsys):
    src = tmp_path / "in.rinr"
    tiny_set.save(src)
    out = tmp_path / "o.rinr"
    code, _, err = run(["encode", src, "-o", out, "--prune-l1", "0.2", "--quiet"], capsys)
    assert code == 2 and "no masks to retrain" in err and not out.exists()


def test_rd_command_writes_compressai_shaped_json(tmp_path, folder, capsys):
    out = tmp_path / "rd.json"
    code, text, err = run(["rd", folder, "-o", out, "--archs", "2x8", "--steps", "20", "--retrain-steps", "5",
                           "--qualities", "10,90", "--downscale", "2", "--quiet", "--limit", "3"], capsys)
    assert code == 0, err
    results = json.loads(out.read_text())
    assert {"name", "description", "results", "matched", "settings", "hardware", "bd"} <= set(results)
    for name in ["INR fp32", "INR pruned", "INR 16-bit", "INR 8-bit layer-wise", "INR 8-bit all layers",
                 "JPEG", "JPEG downsampled x2"]:
        entry = results["results"][name]
        assert len(entry["bpp"]) == len(entry["bytes"]) == len(entry["psnr"]) >= 1
    assert len(results["results"]["JPEG"]["psnr"]) == 2
    h, w = results["height"], results["width"]
    fp32 = results["results"]["INR fp32"]
    assert fp32["bpp"][0] == pytest.approx(8 * fp32["bytes"][0] / (h * w), rel=1e-4)
    assert "INR 8-bit layer-wise" in text
    code, _, err = run(["rd", folder, "-o", out, "--quiet"], capsys)
    assert code == 2 and "already exists" in err
    code, _, err = run(["rd", folder, "-o", tmp_path / "x.json", "--dynamic-prune", "40:0,30:0.1"], capsys)
    assert code == 2 and not (tmp_path / "x.json").exists()
