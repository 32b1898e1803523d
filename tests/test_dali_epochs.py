"""DALI's loader in its CPU mode: epochs that cover every image once and do not drift, a shuffle
that is a true permutation of class-sorted files, and pad-crop offsets uniform over -pad..pad."""
from __future__ import annotations

from collections import Counter

import pytest
import torch

from rapidinr.training import loaders
from rapidinr.training.augment import AugmentConfig

pytestmark = pytest.mark.skipif(not loaders.dali_available(), reason="NVIDIA DALI not installed")

N = 10  # images; label i for file i, so the files are sorted by class


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    images = torch.arange(N, dtype=torch.uint8).mul(20)[:, None, None, None].expand(N, 1, 8, 8).contiguous()
    return loaders.write_jpegs(images, tmp_path_factory.mktemp("jpegs"), quality=95)


def loader(files, **options):
    aug = AugmentConfig((8, 8), mode="none", flip=0.0)
    return loaders.DaliLoader(files, torch.arange(N), aug, "cpu", channels=1, workers=1, batch_size=4, **options)


def epoch_labels(dali) -> list[int]:
    return [int(v) for _, y in dali for v in y]


def test_every_epoch_covers_every_image_once_in_a_new_order(files):
    dali = loader(files, seed=3)
    epochs = [epoch_labels(dali) for _ in range(4)]
    for labels in epochs:
        assert sorted(labels) == list(range(N))  # the padded last batch is cut: no repeats, no drift
    assert len({tuple(e) for e in epochs}) == 4  # reshuffled every epoch
    assert epochs[0] != list(range(N))  # a permutation from the start, not class-sorted order


def test_an_abandoned_epoch_does_not_shift_the_next(files):
    dali = loader(files, seed=1)
    first = next(iter(dali))  # the training loop's warm-up takes a few batches and stops
    assert first[0].shape == (4, 1, 8, 8)
    for _ in range(2):
        assert sorted(epoch_labels(dali)) == list(range(N))


def test_drop_last_keeps_epochs_aligned(files):
    dali = loader(files, seed=2, drop_last=True)
    for _ in range(3):
        labels = epoch_labels(dali)
        assert len(labels) == 8 and len(set(labels)) == 8


def test_pad_crop_offsets_are_uniform_over_whole_pixels():
    from nvidia.dali import pipeline_def  # optional dependency: only when DALI is installed

    pad = 4

    @pipeline_def(batch_size=1024, num_threads=1, device_id=None, seed=5)
    def offsets():
        return loaders.dali_offsets(pad)

    pipe = offsets()
    pipe.build()
    values = torch.cat([torch.from_numpy(pipe.run()[0].as_array()).reshape(-1) for _ in range(9)])  # 9216 draws
    counts = Counter(values.tolist())
    assert set(counts) == set(range(-pad, pad + 1))  # never pad + 1
    expected = len(values) / (2 * pad + 1)  # 1024 each
    assert all(abs(c - expected) < 5 * expected ** 0.5 for c in counts.values())  # ends weigh like the rest
