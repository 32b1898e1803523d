"""Smaller defects of issue 14: refits count images; AugmentConfig's bad mode is a user error."""
from __future__ import annotations

import pytest

from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.errors import UserError
from rapidinr.encoding.fit import fit
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
