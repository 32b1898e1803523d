"""GPU paths with no per-batch host syncs, tested on the CPU: PyTorch's ``meta`` device holds
shapes and no values, so any read of a value back to the host (``int(t.max())``, ``bool(t.all())``,
``.item()``) raises there. A batch that runs on ``meta`` would run on a GPU without a sync."""
from __future__ import annotations

import pytest
import torch

from rapidinr.codec.inrset import INRSet
from rapidinr.codec.quantize import QuantConfig
from rapidinr.core import siren
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.errors import UserError
from rapidinr.encoding.compress import finetune_quantized
from rapidinr.training import augment
from rapidinr.training.loaders import InrLoader, TensorLoader


def test_meta_device_refuses_host_reads():  # the premise of this file
    with pytest.raises(RuntimeError):
        int(torch.zeros(3, device="meta").max())


@pytest.mark.parametrize("mode, size", [("pad-crop", (8, 8)), ("resized-crop", (8, 8)), ("none", (8, 8))])
def test_pixel_augmentation_reads_nothing_from_the_device(mode, size):
    aug = augment.AugmentConfig(size, mode)
    boxes = augment.sample_boxes(4, aug, torch.Generator().manual_seed(0))
    images = torch.zeros(4, 3, 8, 8, dtype=torch.uint8, device="meta")
    assert augment.apply_pixels(images, boxes, size).shape == (4, 3, *size)


def test_inr_and_tensor_loaders_make_batches_without_host_reads():
    aug = augment.AugmentConfig((8, 8))
    arch = Arch.parse("2x8", 3)
    inrs = INRSet(siren.init_params(arch, range(6)), arch, 8, 8, torch.arange(6) % 2, ["a", "b"]).to("meta")
    shapes = [tuple(x.shape) for x, _ in InrLoader(inrs, aug, batch_size=4)]
    assert shapes == [(4, 3, 8, 8), (2, 3, 8, 8)]
    images = torch.zeros(6, 3, 8, 8, dtype=torch.uint8)
    loader = TensorLoader(images, torch.arange(6) % 2, aug, "meta", batch_size=4)
    assert [tuple(x.shape) for x, _ in loader] == [(4, 3, 8, 8), (2, 3, 8, 8)]


def test_inrset_still_checks_the_range_of_indices():
    arch = Arch.parse("2x8", 3)
    inrs = INRSet(siren.init_params(arch, range(3)), arch, 8, 8)
    with pytest.raises(UserError, match="out of range"):  # still checked, now on the CPU
        inrs.decode_at([0, 3], siren.coordinate_grid(8, 8))


def test_quantization_aware_finetuning_steps_without_host_reads(monkeypatch):
    arch = Arch.parse("2x8", 1)
    images = torch.randint(0, 255, (3, 1, 6, 6), dtype=torch.uint8)
    steps = []
    kernel = siren.loss_and_grad
    monkeypatch.setattr(siren, "loss_and_grad", lambda *a, **k: steps.append(1) or kernel(*a, **k))
    # every step runs on the meta device; only the chunk's final copy back to the host cannot
    with pytest.raises(NotImplementedError, match="meta"):
        finetune_quantized(images, siren.init_params(arch, range(3)), arch, QuantConfig(bits=8, finetune_steps=4),
                           FitConfig(), "meta", progress=False)
    assert len(steps) == 5  # the start and 4 steps, each checked against the best without a sync
