"""The rate-distortion study: `rapidinr rd` with the field's codecs, the cap protocol, the bd table,
published anchors, the Kodak and CIFAR-10-folder sources, and their bad inputs (one line, exit 2)."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rapidinr.cli import main
from rapidinr.core.errors import UserError
from rapidinr.sources.datasets import KODAK_FILES, load_source
from rapidinr.study import anchors

SHARED_KODAK = next((d for d in (Path(__file__).resolve().parents[k] / "shared" / "data" / "kodak" for k in (2, 3))
                     if d.is_dir()), None)


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def kodak(tmp_path_factory):
    """A stand-in Kodak folder: 24 small RGB PNGs named as the set (the real one is 15 MB)."""
    root = tmp_path_factory.mktemp("kodak")
    rng = np.random.default_rng(0)
    for i, name in enumerate(KODAK_FILES):
        base = np.linspace(0, 255, 96 * 64).reshape(64, 96)
        array = np.stack([base, base.T.reshape(64, 96) * 0.5, (base + 40 * i) % 256], axis=2)
        array = (array + rng.normal(0, 8, array.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(array).save(root / name)
    return root


def test_rd_with_codecs_caps_and_bd(tmp_path, kodak, capsys):
    out = tmp_path / "rd.json"
    code, text, err = run(["rd", f"kodak:{kodak}", "--size", "16x16", "--limit", "4", "-o", out,
                           "--archs", "2x6,2x10", "--steps", "20", "--retrain-steps", "5", "--qualities", "30,90",
                           "--codecs", "jpeg,jpeg-opt,webp,webp-x2", "--protocol", "cap", "--caps", "120,300,600",
                           "--quiet"], capsys)
    assert code == 0, err
    doc = json.loads(out.read_text())
    results = doc["results"]
    for name in ("jpeg", "jpeg-opt", "webp", "webp-x2", "best classical (envelope)", "INR 8-bit layer-wise"):
        assert name in results, name
    jpeg = results["jpeg"]  # Pillow's default JPEG cannot fit 120 B: unmet, never a number
    assert jpeg["cap"] == [120, 300, 600] and jpeg["psnr"][0] is None and jpeg["unmet"][0] == 4
    for name in ("jpeg-opt", "webp"):
        for b, cap in zip(results[name]["bytes"], results[name]["cap"]):
            assert b is None or b <= cap
    env = results["best classical (envelope)"]
    for k in range(3):
        met = [results[n]["psnr"][k] for n in ("jpeg", "jpeg-opt", "webp", "webp-x2") if results[n]["psnr"][k]]
        assert env["psnr"][k] == pytest.approx(max(met)) if met else env["psnr"][k] is None
    assert doc["hardware"]["torch"] and doc["published"] == {}
    rows = {(r["test"], r["anchor"]): r for r in doc["bd"]}
    row = rows[("INR 8-bit layer-wise", "webp")]
    assert row["bd_rate_percent"] is not None or row["note"].startswith("not enough overlap")
    assert "cap 120 B/image" in text and "unmet" in text


def test_published_curves_only_beside_the_same_dataset(capsys):
    cifar = anchors.to_results("cifar10", (32, 32))
    assert "published: COIN++" in cifar and cifar["published: COIN++"]["citation"]
    coinpp = cifar["published: COIN++"]
    assert coinpp["bytes"][5] == pytest.approx(519.3, abs=0.1) and coinpp["psnr"][5] == pytest.approx(33.69, abs=0.01)
    assert all(c.citation for d in anchors.CURVES.values() for c in d.values())
    with pytest.raises(UserError, match="512x768"):
        anchors.for_dataset("kodak", (32, 32))


@pytest.mark.parametrize("extra, needle", [
    (["--codecs", "mp3"], "unknown codec 'mp3'"),
    (["--codecs", "webp", "--protocol", "cap", "--caps", "10,640"], "--caps 10: below the smallest file"),
    (["--anchors", "cifar10"], "not cifar10"),
    (["--anchors", "kodak"], "not kodak"),
    (["--caps", "0,640"], "--caps"),
])
def test_bad_study_options_are_one_line_exit_2(tmp_path, kodak, capsys, extra, needle):
    out = tmp_path / "x.json"
    code, _, err = run(["rd", f"kodak/2:{kodak}", "--size", "16x16", "--limit", "2", "-o", out, "--quiet", *extra],
                       capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_jxl_without_its_extra_exits_2(tmp_path, kodak, capsys, monkeypatch):
    from rapidinr.codec import classical

    monkeypatch.setattr(classical, "_jxl_module", lambda: None)
    code, _, err = run(["rd", f"kodak:{kodak}", "--size", "16x16", "-o", tmp_path / "x.json", "--codecs", "jxl"],
                       capsys)
    assert code == 2 and "[jxl]" in err and len(err.strip().splitlines()) == 1


def test_kodak_folder_missing_or_non_rgb_file(tmp_path, kodak, capsys):
    bad = tmp_path / "kodak"
    bad.mkdir()
    for name in KODAK_FILES[1:]:
        (bad / name).write_bytes((kodak / name).read_bytes())
    code, _, err = run(["rd", f"kodak:{bad}", "--size", "16x16", "-o", tmp_path / "x.json"], capsys)
    assert code == 2 and "kodim01.png: missing" in err
    Image.new("L", (96, 64), 128).save(bad / KODAK_FILES[0])
    code, _, err = run(["rd", f"kodak:{bad}", "--size", "16x16", "-o", tmp_path / "x.json"], capsys)
    assert code == 2 and "kodim01.png: not an RGB image (mode L)" in err


def test_kodak_source_crops_and_downscale(kodak):
    full = load_source(f"kodak:{kodak}")
    assert full.images.shape == (24, 3, 64, 96) and full.source.startswith("kodak:")
    crops = load_source(f"kodak/2:{kodak}", (16, 16), limit=30, seed=3)
    assert crops.images.shape == (30, 3, 16, 16) and crops.source.startswith("kodak/2-crops:16x16")
    again = load_source(f"kodak/2:{kodak}", (16, 16), limit=30, seed=3)
    assert (again.images == crops.images).all()  # seeded
    with pytest.raises(UserError, match="larger than the Kodak photos"):
        load_source(f"kodak/4:{kodak}", (32, 32))


def test_cifar10_folder_with_labels(tmp_path):
    for split in ("train", "test"):
        for label, cls in enumerate(("airplane", "automobile")):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (32, 32), (label * 100, i * 50, 10)).save(tmp_path / split / cls / f"{i:04d}.jpg")
    data = load_source(f"cifar10-folder:{tmp_path}", split="test")
    assert data.images.shape == (4, 3, 32, 32) and data.labels.tolist() == [0, 0, 1, 1]
    assert data.class_names == ["airplane", "automobile"] and data.source.endswith("/test")


@pytest.mark.skipif(SHARED_KODAK is None, reason="../shared/data/kodak not present")
def test_the_real_kodak_set_loads():
    data = load_source(f"kodak/4:{SHARED_KODAK}", (32, 32), limit=24)
    assert data.images.shape == (24, 3, 32, 32)


@pytest.mark.slow
def test_compact_preset_is_an_rd_variant_with_real_bytes(tmp_path, kodak, capsys):
    """`rd --preset compact`: the compact store on the shared fit (every arch) and from the shipped
    learned init (only archs with one: 3x10 at 32x32), at the bytes of its real .rinr file."""
    import torch

    from rapidinr.codec.inrset import INRSet
    from rapidinr.core.config import Arch, FitConfig
    from rapidinr.encoding.fit import fit
    from rapidinr.study import rd

    out = tmp_path / "rd.json"
    code, text, err = run(["rd", f"kodak:{kodak}", "--size", "32x32", "--limit", "3", "-o", out, "--archs",
                           "2x6,3x10", "--steps", "10", "--retrain-steps", "2", "--qualities", "30,90", "--codecs",
                           "jpeg-opt,webp", "--protocol", "cap", "--caps", "400,900", "--preset", "compact",
                           "--quiet"], capsys)
    assert code == 0, err
    doc = json.loads(out.read_text())
    compact, learned = doc["results"]["INR compact"], doc["results"]["INR compact, learned init"]
    assert compact["arch"] == ["2x6", "3x10"] and compact["init"] == ["random", "random"]
    assert learned["arch"] == ["3x10"] and learned["init"] == ["init-cifar10-3x10-32x32.safetensors"]
    assert doc["settings"]["compact"]["preset"] == "compact" and doc["settings"]["compact"]["finetune_steps"] == 200
    assert {("INR compact", "webp"), ("INR compact, learned init", "jpeg-opt")} <= {
        (r["test"], r["anchor"]) for r in doc["bd"]}
    assert "INR compact" in text  # in the per-cap table
    # the same fit (same seed and settings) through the same path, saved: the bytes are the file's
    images = load_source(f"kodak:{kodak}", (32, 32), limit=3).images
    cfg = rd.RDConfig(archs=("3x10",), fit=FitConfig(steps=10, lr=1e-3), compact="compact")
    arch = Arch.parse("3x10", 3)
    fitted = fit(images, arch, cfg.fit, progress=False).params
    stores = {name: store for name, _, store, _ in rd._compact_variants(images, arch, fitted, cfg, "cpu", False)}
    for name, entry in (("INR compact", compact), ("INR compact, learned init", learned)):
        file_bytes = INRSet(stores[name], arch, 32, 32).save(tmp_path / "c.rinr")
        assert entry["bytes"][-1] == pytest.approx(file_bytes / 3, abs=1e-3), name
        assert entry["bits"][-1] == stores[name].bits and torch.isfinite(torch.tensor(entry["psnr"])).all()


def test_rd_unknown_preset_exits_2(tmp_path, kodak, capsys):
    out = tmp_path / "x.json"
    code, _, err = run(["rd", f"kodak:{kodak}", "--size", "16x16", "-o", out, "--preset", "tiny"], capsys)
    assert code == 2 and "--preset" in err and len(err.strip().splitlines()) == 1 and not out.exists()


def _legend(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_kodak_full_figure_labels_ours_quick_and_theirs_published(benchmark_script, tmp_path):
    study = benchmark_script("rd_study")
    doc = {"name": "kodak", "images": 1, "published": anchors.to_results("kodak", (512, 768)),
           "results": {"INR 16-bit": {"bpp": [0.3], "bytes": [14745.6], "psnr": [24.0]},
                       "webp": {"bpp": [0.2, 0.5], "bytes": [9830.4, 24576.0], "psnr": [28.0, 32.0]}}}
    label = study.run_label("cpu", 1, 300)
    assert label == "this CPU, quick: 1 image, 300 steps"
    texts = _legend(study.kodak_figure(doc, label))
    assert "INR 16-bit (this CPU, quick: 1 image, 300 steps)" in texts
    assert {f"published: {name}" for name in anchors.CURVES["kodak"]} <= set(texts)
    assert not any("published" in t and "this CPU" in t for t in texts)


@pytest.mark.slow
def test_kodak_full_quick_path_writes_json_and_figure(benchmark_script, tmp_path):
    """`rd_study.py --kodak-full 1` on a stand-in 768x512 Kodak folder (a tiny SIREN, 2 steps):
    the JSON holds the published Kodak curves apart from ours, and says how short the run was."""
    root = tmp_path / "kodak"
    root.mkdir()
    ramp = np.linspace(0, 255, 768)[None, :] * np.ones((512, 1))
    for i, name in enumerate(KODAK_FILES):
        array = np.stack([ramp, ramp[:, ::-1] * 0.5 + 4 * i, ramp * 0.3], axis=2)
        Image.fromarray(array.clip(0, 255).astype(np.uint8)).save(root / name)
    study = benchmark_script("rd_study")
    assert study.main(["--kodak", str(root), "--kodak-full", "1", "--full-steps", "2", "--full-arch", "2x4",
                       "--no-compact", "--results", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "rd-study-kodak-full-cpu.json").read_text())
    assert doc["run"]["label"] == "this CPU, quick: 1 image, 2 steps" and doc["run"]["converged"] is False
    assert doc["run"]["gpu_command"] == study.GPU_COMMAND
    assert set(doc["published"]) == {f"published: {name}" for name in anchors.CURVES["kodak"]}
    assert all(e["description"] == "published" for e in doc["published"].values())
    assert not any(name.startswith("published") for name in doc["results"])  # never mixed into ours
    assert doc["results"]["INR 16-bit"]["arch"] == ["2x4"] and (tmp_path / "rd-study-kodak-full-cpu.png").is_file()
