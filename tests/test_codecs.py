"""The field's classical codecs (rapidinr.codec.classical) and the byte-cap protocol (study.baselines)."""
import io

import pytest
import torch
from PIL import Image

from rapidinr.codec.classical import CODECS, decode, encode, encode_jpeg, parse_codec
from rapidinr.core.errors import UserError
from rapidinr.core.metrics import psnr
from rapidinr.study import baselines

AVAILABLE = [name for name, codec in CODECS.items() if codec.available()]


@pytest.fixture(scope="module")
def photos():
    from rapidinr.sources.datasets import load_sample_crops

    return load_sample_crops(3, (32, 32), seed=2).images


@pytest.mark.parametrize("name", AVAILABLE + ["webp-x2", "jpeg-opt-x2"])
def test_every_codec_round_trips_and_its_bytes_are_the_file(photos, name, tmp_path):
    spec = parse_codec(name)
    quality = (spec.codec.low + spec.codec.high) // 2
    result = baselines.at_quality(photos, spec, quality)
    assert result.images.shape == photos.shape and result.images.dtype == torch.uint8
    for i in range(len(photos)):
        data = encode(spec, photos[i], quality)
        path = tmp_path / f"{i}.bin"
        path.write_bytes(data)
        assert int(result.bytes[i]) == len(data) == path.stat().st_size
        assert torch.equal(result.images[i], decode(spec, path.read_bytes(), 3, 32, 32))
    assert torch.equal(result.psnr, psnr(photos, result.images))  # the one PSNR
    assert float(result.psnr.mean()) > 20  # a mid quality reconstructs the image
    high = baselines.at_quality(photos, spec, spec.codec.high)
    assert high.bytes.sum() > result.bytes.sum() and high.psnr.mean() > result.psnr.mean()


def test_jpeg_table_settings_are_explicit(photos):
    default = encode_jpeg(photos[0], 75)
    buffer = io.BytesIO()
    Image.fromarray(photos[0].permute(1, 2, 0).numpy()).save(buffer, "JPEG", quality=75)
    assert default == buffer.getvalue()  # the defaults are Pillow's: standard tables, 4:2:0
    assert len(encode_jpeg(photos[0], 75, "4:2:0", optimize=True)) < len(default)
    assert len(encode_jpeg(photos[0], 75, "4:4:4")) > len(default)
    with pytest.raises(UserError, match="subsampling"):
        encode_jpeg(photos[0], 75, "4:1:1")


@pytest.mark.parametrize("name", [n for n in ("jpeg", "jpeg-opt", "webp", "jp2", "jxl") if n in AVAILABLE])
def test_bisection_finds_the_quality_exhaustive_search_finds(photos, name):
    """Bisection (~7 encodes) picks what trying every quality picks: the highest whose file fits.
    (AVIF's sizes are not monotone in quality at 32×32: there bisection can stop a few short.)"""
    spec = parse_codec(name)
    for cap in (420, 700, 1000):
        result = baselines.at_cap(photos, spec, cap)
        for i in range(len(photos)):
            sizes = {q: len(encode(spec, photos[i], q)) for q in range(spec.codec.low, spec.codec.high + 1)}
            fitting = [q for q, size in sizes.items() if size <= cap]
            if not fitting:
                assert result.over_budget[i]
                continue
            assert int(result.quality[i]) == max(fitting), (name, cap, i)
            assert int(result.bytes[i]) == sizes[max(fitting)] <= cap and not result.over_budget[i]


def test_an_unmeetable_cap_is_reported_as_such_never_a_number(photos):
    result = baselines.at_cap(photos, "jpeg", 300)  # Pillow's default JPEG cannot go below ~640 B at 32×32
    assert result.unmet == len(photos)
    summary = result.summary()
    assert summary["psnr_mean"] is None and summary["bytes_mean"] is None and summary["unmet"] == len(photos)
    env = baselines.envelope({"jpeg": result})
    assert env["best"] is None and env["psnr_mean"] is None
    webp = baselines.at_cap(photos, "webp", 300)
    env = baselines.envelope({"jpeg": result, "webp": webp})
    assert env["best"] == "webp" and env["psnr_mean"] == pytest.approx(float(webp.psnr.mean()))


@pytest.mark.parametrize("name, needle", [("mp3", "unknown codec"), ("webp-x1", "downscale factor"),
                                          ("jpeg-xx2", "unknown codec")])
def test_bad_codec_names(name, needle):
    with pytest.raises(UserError, match=needle):
        parse_codec(name)


def test_jxl_without_its_extra_is_one_clear_line(monkeypatch):
    from rapidinr.codec import classical

    monkeypatch.setattr(classical, "_jxl_module", lambda: None)
    with pytest.raises(UserError, match=r"jxl.*not available.*\[jxl\]"):
        parse_codec("jxl")
