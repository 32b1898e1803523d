"""Smaller defects of issue 14: refits count images; AugmentConfig's bad mode is a user error."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from rapidinr.codec import prune
from rapidinr.core import siren
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.errors import UserError
from rapidinr.encoding.fit import fit
from rapidinr.sources import datasets, images
from rapidinr.sources.datasets import load_default
from rapidinr.training.augment import AugmentConfig


def test_refits_count_images_not_attempts():
    images = load_default("train").images[:2]
    # lr 0.9 collapses every fit, and every refit at half the rate again: 2 images, 2 attempts each
    result = fit(images, Arch.parse("2x8", 1), FitConfig(steps=100, lr=0.9, max_refits=2), progress=False)
    assert result.refits == 2


def test_unknown_augmentation_mode_is_a_user_error():
    with pytest.raises(UserError, match="unknown augmentation mode 'twirl'"):
        AugmentConfig((8, 8), "twirl")


def test_limit_applies_before_decoding_a_folder(tmp_path, monkeypatch):
    for klass in ("a", "b"):
        (tmp_path / klass).mkdir()
        for i in range(3):
            Image.new("RGB", (4, 4), (40 * i, 0, 0)).save(tmp_path / klass / f"{i}.png")
    decoded = []
    real = images.read_image  # the folder reader decodes through it (in this process below 64 files)
    monkeypatch.setattr(images, "read_image", lambda path, size: decoded.append(path) or real(path, size))
    data = datasets.load_source(str(tmp_path), limit=2)
    assert len(data) == 2 and len(decoded) == 2  # not all six decoded, then cut
    assert data.class_names == ["a", "b"] and data.labels.tolist() == [0, 0]  # labels as in the whole folder
    with pytest.raises(UserError, match="--limit"):
        datasets.load_source(str(tmp_path), limit=0)


def test_l1_masks_are_ranked_a_chunk_of_rows_at_a_time(monkeypatch):
    arch = Arch.parse("2x8", 1)
    params = siren.init_params(arch, range(50))  # (50, P)
    ratio = torch.linspace(0.1, 0.6, 50)
    whole = prune.l1_mask(params, arch, ratio)
    monkeypatch.setattr(prune, "L1_CHUNK_ELEMENTS", 7 * arch.n_params)  # ~7 rows at once
    sorted_rows = []
    argsort = torch.Tensor.argsort
    monkeypatch.setattr(torch.Tensor, "argsort",
                        lambda self, *a, **k: sorted_rows.append(self.shape[0]) or argsort(self, *a, **k))
    chunked = prune.l1_mask(params, arch, ratio)
    assert torch.equal(chunked, whole)  # the same mask, ties broken the same way
    assert sorted_rows and max(sorted_rows) <= 8 and sum(sorted_rows) == 50
