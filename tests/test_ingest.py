"""Ingest: a folder decoded in order into one preallocated uint8 tensor (never a list of arrays
plus a stacked copy), by a pool of processes when there are many files; the same set either way."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from rapidinr.sources import datasets, images
from rapidinr.sources.images import read_image, read_images, stack_images


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """70 files: gray and colour PNGs (one colour JPEG with an EXIF rotation), one corrupt file."""
    root = tmp_path_factory.mktemp("ingest")
    rng = np.random.default_rng(0)
    for i in range(70):
        cls = root / ("a" if i % 2 else "b")
        cls.mkdir(exist_ok=True)
        if i == 5:
            (cls / f"{i:03d}.png").write_bytes(b"\x89PNG not really")
        elif i % 7 == 3:
            Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).save(cls / f"{i:03d}.png")
        else:
            Image.fromarray(rng.integers(0, 255, (6, 6), dtype=np.uint8)).save(cls / f"{i:03d}.png")
    return root


def _serial(paths, size=None, limit=None):
    """What the reader did before: every readable file into a list, then one stacked copy."""
    arrays, grays, used = [], [], []
    for i, path in enumerate(paths):
        if limit is not None and len(arrays) >= limit:
            break
        try:
            array, gray = read_image(path, size)
        except Exception:
            continue
        arrays.append(array)
        grays.append(gray)
        used.append(i)
    return stack_images(arrays, grays, [str(paths[i]) for i in used]), used


@pytest.mark.parametrize("limit", [None, 9, 40])
def test_the_pool_and_one_process_read_the_same_set_as_before(folder, monkeypatch, limit):
    paths = datasets.list_image_files(folder)
    expected, used = _serial(paths, limit=limit)
    monkeypatch.setattr(images, "POOL_MIN_FILES", 8)
    for workers in (1, 2):
        got, got_used, skipped = read_images(paths, skip_bad=True, limit=limit, workers=workers)
        assert got_used == used and torch.equal(got, expected)
        assert len(skipped) == 1 and "a/005.png" in skipped[0]  # the third file in order: within every limit


def test_gray_files_then_a_colour_one_make_an_rgb_set(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (4, 5), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "3.png").write_bytes(b"broken")  # forces a second round of headers, where colour appears
    Image.fromarray(rng.integers(0, 255, (4, 5, 3), dtype=np.uint8)).save(tmp_path / "4.png")
    paths = datasets.list_image_files(tmp_path)
    got, used, skipped = read_images(paths, skip_bad=True, limit=4, workers=1)
    expected, expected_used = _serial(paths, limit=4)
    assert used == expected_used == [0, 1, 2, 4] and got.shape == (4, 3, 4, 5) and torch.equal(got, expected)
    assert len(skipped) == 1 and "3.png" in skipped[0]


def test_load_folder_never_stacks_a_second_copy(folder, monkeypatch):
    monkeypatch.setattr(datasets, "stack_images", lambda *a: pytest.fail("a list of arrays was stacked"))
    data = datasets.load_folder(folder, skip_bad=True)
    assert data.images.shape == (69, 3, 6, 6) and data.labels.tolist() == [0] * 34 + [1] * 35
    assert data.names[:3] == ["a/001.png", "a/003.png", "a/007.png"] and len(data.skipped) == 1


def test_mixed_sizes_name_both_files_before_any_decoding(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(tmp_path / "b.png")
    monkeypatch.setattr(images, "read_image", lambda *a: pytest.fail("decoded before the sizes were checked"))
    with pytest.raises(Exception, match=r"a.png is 4x4, b.png is 5x4"):
        datasets.load_folder(tmp_path)
