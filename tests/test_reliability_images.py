"""Awkward real image files, made here with Pillow: each is encoded correctly or gets one clear error.

With ``--skip-bad`` a run over all of them goes on and lists what it skipped.
"""
from __future__ import annotations

import io
import struct
import zlib
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from PIL import Image

from rapidinr import UserError, load
from rapidinr.cli import main
from rapidinr.sources.images import read_image

FAST = ["--arch", "1x4", "--steps", "3", "--quiet"]
RNG = np.random.default_rng(6)
PHOTO = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)  # H=20, W=30


def _bytes(image: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kw)
    return buffer.getvalue()


def _png_with_size(width: int, height: int) -> bytes:
    """A valid 1×1 PNG whose IHDR claims another size (a decompression bomb's header)."""
    data = bytearray(_bytes(Image.new("L", (1, 1)), "PNG"))
    ihdr = 8 + 8  # signature, then length and type of the first chunk
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def _exif_rotated() -> bytes:
    """A 30 wide × 20 high JPEG whose EXIF says 'rotate 90° clockwise to view' (orientation 6)."""
    image = Image.new("RGB", (30, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 30, 5))  # a red band along the stored top edge
    exif = image.getexif()
    exif[0x0112] = 6
    return _bytes(image, "JPEG", exif=exif, quality=95)


def _palette_with_transparency() -> bytes:
    image = Image.new("P", (8, 6), 0)
    image.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    image.paste(1, (0, 0, 4, 6))  # left half colour 1 (red), right half colour 0 (transparent)
    return _bytes(image, "PNG", transparency=0)


GOOD = {  # name → (bytes, expected (H, W), is gray)
    "cmyk.jpg": (lambda: _bytes(Image.new("CMYK", (12, 9), (0, 255, 255, 0)), "JPEG", quality=95), (9, 12), False),
    "deep16.png": (lambda: _bytes(Image.fromarray(np.full((7, 5), 51400, np.uint16)), "PNG"), (7, 5), True),
    "palette-alpha.png": (_palette_with_transparency, (6, 8), False),
    "one.png": (lambda: _bytes(Image.new("RGB", (1, 1), (10, 20, 30)), "PNG"), (1, 1), False),
    "wide.png": (lambda: _bytes(Image.fromarray(np.tile(np.arange(250, dtype=np.uint8), 40)[None]), "PNG"),
                 (1, 10000), True),
    "exif-rotated.jpg": (_exif_rotated, (30, 20), False),
}
BAD = {  # name → bytes
    "truncated.png": lambda: _bytes(Image.fromarray(PHOTO), "PNG")[:300],
    "truncated.jpg": lambda: (lambda b: b[: len(b) // 2])(_bytes(Image.fromarray(PHOTO), "JPEG", quality=90)),
    "zero.png": lambda: b"",
    "text.png": lambda: b"this is a text file, not a PNG\n",
    "bomb.png": lambda: _png_with_size(100_000, 100_000),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    for name, (make, _, _) in GOOD.items():
        (root / name).write_bytes(make())
    for name, make in BAD.items():
        (root / name).write_bytes(make())
    return root


@pytest.mark.parametrize("name", sorted(GOOD))
def test_awkward_but_valid_files_read_correctly(corpus, name):
    array, gray = read_image(corpus / name)
    _, shape, is_gray = GOOD[name]
    assert array.shape[:2] == shape and gray == is_gray and array.dtype == np.uint8
    if name == "cmyk.jpg":
        assert np.abs(array.reshape(-1, 3).mean(0) - [255, 0, 0]).max() < 8  # C=0 M=Y=255: red
    elif name == "deep16.png":
        assert (array == 200).all()  # 51400 / 257
    elif name == "palette-alpha.png":
        assert (array[:, :4] == [200, 10, 10]).all() and (array[:, 4:] == 255).all()  # alpha onto white
    elif name == "one.png":
        assert array.tolist() == [[[10, 20, 30]]]
    elif name == "wide.png":
        assert array[0, :250].tolist() == list(range(250))
    elif name == "exif-rotated.jpg":  # upright: the stored top band is now the right-hand column band
        assert array[:, -5:, 0].mean() > 200 and array[:, -5:, 2].mean() < 60
        assert array[:, :10, 2].mean() > 200


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_files_give_one_error_naming_them(corpus, name):
    with pytest.raises(UserError) as info:
        read_image(corpus / name)
    assert name in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("name", sorted(GOOD) + sorted(BAD))
def test_each_file_alone_through_the_cli(corpus, tmp_path, capsys, name):
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / name).write_bytes((corpus / name).read_bytes())
    out = tmp_path / "set.rinr"
    code = main(["encode", str(folder), "-o", str(out), *FAST])
    err = capsys.readouterr().err
    if name in GOOD:
        assert code == 0, err
        inrs = load(out)
        shape, gray = GOOD[name][1], GOOD[name][2]
        assert (len(inrs), inrs.height, inrs.width, inrs.channels) == (1, *shape, 1 if gray else 3)
    else:
        assert code == 2 and err.count("\n") == 1 and name in err and "Traceback" not in err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["one"]  # no partial output


def test_skip_bad_goes_on_and_lists_what_it_skipped(corpus, tmp_path, capsys):
    out = tmp_path / "set.rinr"
    code = main(["encode", str(corpus), "-o", str(out), "--size", "8x8", *FAST])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "bomb.png" in err  # the first bad file, in order
    assert not out.exists()
    assert main(["encode", str(corpus), "-o", str(out), "--size", "8x8", "--skip-bad", *FAST]) == 0
    captured = capsys.readouterr()
    skipped = [line for line in captured.err.splitlines() if line.startswith("skipped ")]
    assert sorted(line.split()[1].rsplit("/", 1)[-1].rstrip(":") for line in skipped) == sorted(BAD)
    assert f"{len(BAD)} skipped" in captured.out
    inrs = load(out)
    assert (len(inrs), inrs.height, inrs.width, inrs.channels) == (len(GOOD), 8, 8, 3)


FORMATS = {fmt: _bytes(Image.fromarray(PHOTO[:12, :16]), fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP", "WEBP")}


@settings(max_examples=400, deadline=timedelta(seconds=10), database=None,
          suppress_health_check=list(HealthCheck))
@seed(66)
@given(fmt=st.sampled_from(sorted(FORMATS)), data=st.data())
def test_mutated_images_are_read_or_refused_by_name(tmp_path_factory, fmt, data):
    """Random byte edits of small valid files: a decoded uint8 image or one UserError naming the file."""
    raw = bytearray(FORMATS[fmt])
    for _ in range(data.draw(st.integers(1, 6))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path_factory.getbasetemp() / f"mutated.{fmt.lower()}"
    path.write_bytes(bytes(raw))
    try:
        array, _ = read_image(path)
    except UserError as err:
        assert "mutated." in str(err) and "\n" not in str(err)
    else:
        assert array.dtype == np.uint8 and array.ndim in (2, 3) and min(array.shape[:2]) >= 1
