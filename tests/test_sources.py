"""Image sources: the embedded default, the sample photos, torchvision from local files, folders."""
from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from rapidinr import UserError
from rapidinr.sources.datasets import DEFAULT_DIR, FASHION_CLASSES, load_source, parse_size


def test_embedded_default_has_train_and_test_with_labels():
    train, test = load_source("default"), load_source("default:test")
    assert train.images.shape == (4000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert test.images.shape == (1000, 1, 28, 28)
    assert set(train.labels.tolist()) == set(range(10)) and train.class_names == FASHION_CLASSES
    assert train.images.float().mean() > 40  # real clothing pictures, not zeros


def test_default_resizes_with_antialiasing():
    small = load_source("default", size=(14, 14), limit=5)
    assert small.images.shape == (5, 1, 14, 14)


def test_sample_photos_and_crops_are_real_colour_images():
    photos = load_source("samples", size=(40, 48))
    assert photos.images.shape == (9, 3, 40, 48)
    crops = load_source("samples-crops", size=(32, 32), limit=20, seed=3)
    assert crops.images.shape == (20, 3, 32, 32)
    assert crops.images.float().std() > 20
    assert torch.equal(crops.images, load_source("samples-crops", size=(32, 32), limit=20, seed=3).images)


def test_torchvision_fashion_mnist_from_a_local_root(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        for kind in ("images-idx3", "labels-idx1"):
            with gzip.open(DEFAULT_DIR / f"{prefix}-{kind}-ubyte.gz") as src, open(raw / f"{prefix}-{kind}-ubyte", "wb") as dst:
                shutil.copyfileobj(src, dst)
    data = load_source(f"fashion-mnist:{tmp_path}", split="test")
    assert data.images.shape == (1000, 1, 28, 28)
    assert torch.equal(data.images, load_source("default:test").images)
    assert torch.equal(data.labels, load_source("default:test").labels)


def test_torchvision_dataset_missing_says_how_to_download(tmp_path):
    with pytest.raises(UserError, match="--download"):
        load_source(f"cifar10:{tmp_path}")


def test_folder_classes_order_and_modes(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    Image.fromarray(np.full((6, 5), 200, np.uint8), "L").save(tmp_path / "b" / "x.png")
    Image.fromarray(np.zeros((6, 5, 4), np.uint8), "RGBA").save(tmp_path / "a" / "z.png")  # fully transparent
    Image.fromarray(np.full((6, 5, 3), 10, np.uint8)).convert("CMYK").save(tmp_path / "a" / "y.jpg")
    data = load_source(str(tmp_path))
    assert data.names == ["a/y.jpg", "a/z.png", "b/x.png"]
    assert data.labels.tolist() == [0, 0, 1] and data.class_names == ["a", "b"]
    assert data.images.shape == (3, 3, 6, 5)  # mixed gray/colour → RGB
    assert data.images[1].min() == 255  # transparency composited onto white
    assert (data.images[2] == 200).all()  # gray repeated to three channels


def test_sixteen_bit_png_is_scaled_to_eight_bits(tmp_path):
    Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(tmp_path / "deep.png")
    data = load_source(str(tmp_path))
    assert data.images.shape == (1, 1, 4, 4) and (data.images == 255).all()


@pytest.mark.parametrize("text", ["0x4", "4x", "axb", "3x4x5", "-2"])
def test_bad_sizes_are_clear_errors(text):
    with pytest.raises(UserError, match="--size"):
        parse_size(text)


@pytest.mark.parametrize("text", ["0_1x4", "\u0663\u0662x32", " 32x32", "32x", "x32", "3.5x4", "0x4", "32x32x3"])
def test_size_accepts_ascii_digits_only(text):
    with pytest.raises(UserError, match="--size"):
        parse_size(text)


def test_sample_crops_larger_than_a_shrunk_photo_come_from_full_resolution():
    from rapidinr.core.errors import UserError
    from rapidinr.sources.datasets import load_sample_crops

    small = load_sample_crops(9, (48, 48), seed=0)
    assert small.images.shape == (9, 3, 48, 48)
    big = load_sample_crops(9, (128, 128), seed=0)  # chelsea (300x451) is 75 px tall shrunk 4x
    assert big.images.shape == (9, 3, 128, 128) and big.images.float().std() > 10
    with pytest.raises(UserError, match="crop size 301x301 is larger than the smallest sample photo"):
        load_sample_crops(2, (301, 301))


@pytest.fixture(scope="module")
def small_kodak(tmp_path_factory):
    """A stand-in Kodak folder: 24 small RGB PNGs named as the set, photo i filled with value i."""
    from rapidinr.sources.datasets import KODAK_FILES

    root = tmp_path_factory.mktemp("kodak")
    for i, name in enumerate(KODAK_FILES, start=1):
        Image.fromarray(np.full((24, 36, 3), i, np.uint8)).save(root / name)
    return root


def test_kodak_photo_range_reads_only_those_photos(small_kodak):
    held_out = load_source(f"kodak@17-24:{small_kodak}")
    assert held_out.names == [f"kodim{i}.png" for i in range(17, 25)]
    assert held_out.images[:, 0, 0, 0].tolist() == list(range(17, 25)) and held_out.source.startswith("kodak@17-24:")
    crops = load_source(f"kodak/2@1-16:{small_kodak}", (8, 8), limit=40, seed=1)
    assert crops.images.shape == (40, 3, 8, 8) and crops.source.startswith("kodak/2@1-16-crops:8x8")
    assert set(crops.images[:, 0, 0, 0].tolist()) == set(range(1, 17))  # every training photo, none held out
    assert {n.split("@")[0] for n in crops.names} == {f"kodim{i:02d}.png" for i in range(1, 17)}
    assert load_source(f"kodak@5-5:{small_kodak}").names == ["kodim05.png"]


@pytest.mark.parametrize("spec", ["kodak@0-3", "kodak@3-2", "kodak@1-25", "kodak@1", "kodak@a-b", "kodak/2@-4"])
def test_bad_kodak_photo_range_is_one_line(small_kodak, spec):
    with pytest.raises(UserError, match=r"photo range must be A-B with 1 <= A <= B <= 24"):
        load_source(f"{spec}:{small_kodak}")


def test_bad_kodak_photo_range_from_the_cli_exits_2(small_kodak, tmp_path, capsys):
    from rapidinr.cli import main

    out = tmp_path / "x.rinr"
    assert main(["encode", f"kodak@9-30:{small_kodak}", "--size", "8x8", "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "kodak@9-30" in err and not out.exists()
