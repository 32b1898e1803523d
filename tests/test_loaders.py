"""The augmentation contract and the five loaders (CPU; nvjpeg on a GPU only)."""
from __future__ import annotations

import pytest
import torch

from rapidinr import encode
from rapidinr.sources.datasets import load_default
from rapidinr.training import augment, loaders
from rapidinr.training.augment import AugmentConfig


@pytest.fixture(scope="module")
def fashion():
    """48 embedded Fashion-MNIST images (28×28 gray) and a 3x15 INR of them (short fit)."""
    data = load_default("train").subset(0, 48)
    inrs = encode(data.images, "3x15", steps=40, labels=data.labels, class_names=data.class_names,
                  progress=False)
    return data, inrs


def _unnormalize(x, aug):
    return x * aug.std + aug.mean


# -- the contract ------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(28, 28), (64, 64), (20, 36)])
def test_pad_crop_in_coordinates_equals_pixel_shift(fashion, size):
    """Crop + flip folded into the INR's coordinate grid equals the same boxes applied as pixel ops
    to the decoded image: whole-pixel shifts land exactly on the decoded pixel centres."""
    _, inrs = fashion
    aug = AugmentConfig(size, mode="pad-crop")
    boxes = augment.sample_boxes(len(inrs), aug, torch.Generator().manual_seed(1))
    assert boxes.flip.any() and (~boxes.flip).any() and (boxes.top != 0).any()
    pixels = augment.apply_pixels(inrs.decode(size=size), boxes, size)  # (B, C, H, W)
    coords = _unnormalize(loaders.InrLoader(inrs, aug).decode(torch.arange(len(inrs)), boxes), aug)
    assert coords.shape == pixels.shape == (len(inrs), 1, *size)
    assert torch.allclose(coords, pixels, atol=1e-4)
    # the padding is black in both
    assert (pixels == 0).any()


def test_resized_crop_in_coordinates_matches_bilinear_pixels(fashion):
    """A random-resized crop samples the SIREN at the box's pixel centres; bilinear sampling of the
    decoded pixels at the same coordinates agrees up to interpolation error."""
    _, inrs = fashion
    aug = AugmentConfig((28, 28), mode="resized-crop")
    boxes = augment.sample_boxes(len(inrs), aug, torch.Generator().manual_seed(2))
    assert (boxes.height < 1).any() and ((boxes.height > 0) & (boxes.height <= 1)).all()
    assert ((boxes.top >= 0) & (boxes.top + boxes.height <= 1 + 1e-9)).all()
    pixels = augment.apply_pixels(inrs.decode(), boxes, aug.size)
    coords = _unnormalize(loaders.InrLoader(inrs, aug).decode(torch.arange(len(inrs)), boxes), aug)
    assert (coords - pixels).abs().mean() < 0.03


def test_boxes_are_independent_per_image():
    aug = AugmentConfig((32, 32))
    boxes = augment.sample_boxes(256, aug, torch.Generator().manual_seed(0))
    assert boxes.top.unique().numel() == 9 and boxes.left.unique().numel() == 9  # -4..4 px
    assert 0.4 < boxes.flip.float().mean() < 0.6
    assert AugmentConfig((224, 224)).resolved_mode == "resized-crop"
    assert AugmentConfig((64, 64)).resolved_mode == "pad-crop"


def test_flip_and_shift_pixel_op_exact():
    """The gather path: a known shift and flip of a known image."""
    image = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4)
    boxes = augment.Boxes(torch.tensor([1 / 4]), torch.tensor([-1 / 4]), torch.ones(1), torch.ones(1),
                          torch.tensor([True]))
    out = (augment.apply_pixels(image, boxes, (4, 4)) * 255).round().long()[0, 0]
    shifted = torch.zeros(4, 4, dtype=torch.long)
    shifted[:3, 1:] = image[0, 0, 1:, :3].long()  # down one row read, left padding one column
    assert torch.equal(out, shifted.flip(1))


# -- the loaders -------------------------------------------------------------------------------------
def test_epoch_indices_shared_permutation_slices():
    a = loaders.epoch_indices(10, 3, seed=5, rank=0, world=2)
    b = loaders.epoch_indices(10, 3, seed=5, rank=1, world=2)
    assert sorted(torch.cat([a, b]).tolist()) == list(range(10))
    assert not torch.equal(loaders.epoch_indices(10, 4, 5), loaders.epoch_indices(10, 3, 5))
    c = loaders.epoch_indices(11, 0, seed=0, rank=1, world=2)
    assert c.numel() == 5


def test_inr_and_tensor_loaders_cover_the_epoch(fashion):
    data, inrs = fashion
    aug = AugmentConfig((32, 32))
    inr = loaders.InrLoader(inrs, aug, batch_size=20, seed=3)
    tensor = loaders.TensorLoader(data.images, data.labels, aug, "cpu", batch_size=20, seed=3)
    for loader in (inr, tensor):
        loader.set_epoch(1)
        batches = list(loader)
        assert len(batches) == len(loader) == 3
        x, y = batches[0]
        assert x.shape == (20, 1, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
        labels = torch.cat([b[1] for b in batches])
        assert torch.equal(labels, data.labels[loader.indices()])  # labels follow the permutation
    assert torch.equal(inr.indices(), tensor.indices())


def test_inr_loader_without_augmentation_is_the_decode(fashion):
    _, inrs = fashion
    aug = AugmentConfig((28, 28), mode="none", flip=0.0)
    x, _ = next(iter(loaders.InrLoader(inrs, aug, batch_size=8, shuffle=False)))
    assert torch.allclose(_unnormalize(x, aug), inrs.decode(torch.arange(8)), atol=1e-5)


def test_inr_loader_refuses_unlabelled_set(tiny_images):
    from rapidinr import UserError

    inrs = encode(tiny_images, "2x8", steps=2, progress=False)
    with pytest.raises(UserError, match="no labels"):
        loaders.InrLoader(inrs, AugmentConfig((12, 10)))


@pytest.mark.parametrize("workers", [0, 1])
def test_jpeg_loader(fashion, tmp_path, workers):
    data, _ = fashion
    paths = loaders.write_jpegs(data.images, tmp_path, quality=95)
    aug = AugmentConfig((28, 28), mode="none", flip=0.0)
    loader = loaders.JpegLoader(paths, data.labels, aug, "cpu", channels=1, workers=workers, batch_size=16,
                                shuffle=False)
    batches = list(loader)
    x = torch.cat([b[0] for b in batches])
    assert x.shape == (48, 1, 28, 28)
    assert torch.equal(torch.cat([b[1] for b in batches]), data.labels)
    err = (_unnormalize(x, aug) - data.images.float() / 255).abs().mean()
    assert err < 0.02  # quality-95 JPEG of the originals


@pytest.mark.skipif(not loaders.dali_available(), reason="NVIDIA DALI not installed")
def test_dali_loader_cpu_only(fashion, tmp_path):
    data, _ = fashion
    paths = loaders.write_jpegs(data.images, tmp_path, quality=95)
    plain = AugmentConfig((28, 28), mode="none", flip=0.0)
    loader = loaders.DaliLoader(paths, data.labels, plain, "cpu", channels=1, workers=1, batch_size=16,
                                shuffle=False)
    x, y = next(iter(loader))
    assert x.shape == (16, 1, 28, 28) and torch.equal(y, data.labels[:16])
    assert (_unnormalize(x, plain) - data.images[:16].float() / 255).abs().mean() < 0.02
    aug = AugmentConfig((28, 28))  # pad-crop + flip: zero padding appears, images change
    x2, _ = next(iter(loaders.DaliLoader(paths, data.labels, aug, "cpu", channels=1, workers=1, batch_size=16,
                                         shuffle=False)))
    assert x2.shape == (16, 1, 28, 28) and not torch.allclose(x2, x)
    assert len(list(loaders.DaliLoader(paths, data.labels, aug, "cpu", channels=1, batch_size=16))) == 3


def test_workers_validation():
    from rapidinr import UserError

    assert loaders.check_workers("jpeg", None) == 1 and loaders.check_workers("inr", None) == 0
    with pytest.raises(UserError, match="no CPU workers"):
        loaders.check_workers("inr", 2)
    with pytest.raises(UserError, match="CPU cores"):
        loaders.check_workers("jpeg", 10_000)


@pytest.mark.gpu
def test_nvjpeg_and_inr_on_gpu(fashion):
    data, inrs = fashion
    aug = AugmentConfig((28, 28), mode="none", flip=0.0)
    encoded = loaders.jpeg_bytes(data.images, 95)
    x, y = next(iter(loaders.NvjpegLoader(encoded, data.labels, aug, "cuda", channels=1, batch_size=16,
                                          shuffle=False)))
    assert x.is_cuda and (_unnormalize(x, aug).cpu() - data.images[:16].float() / 255).abs().mean() < 0.02
    gx, _ = next(iter(loaders.InrLoader(inrs.to("cuda"), aug, batch_size=8, shuffle=False)))
    assert torch.allclose(gx.cpu(), next(iter(loaders.InrLoader(inrs, aug, batch_size=8, shuffle=False)))[0],
                          atol=1e-3)
