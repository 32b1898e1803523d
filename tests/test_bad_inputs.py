"""The core's bad inputs (issue 2): one clear line on stderr, exit code 2, no traceback, no partial output.

Most cases run through ``rapidinr.cli.main(argv)``; a few run a real ``python -m rapidinr``
subprocess to prove no traceback escapes the real entry point.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rapidinr.cli import main
from rapidinr.codec import fileformat

FAST = ["--arch", "1x4", "--steps", "5", "--quiet"]


def listing(root: Path) -> set[str]:
    """Every file and folder under ``root`` (hidden temporaries included)."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def run_main(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_clear_line(code: int, err: str, *names: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("rapidinr: error: ")
    assert "Traceback" not in err
    for name in names:
        assert name in lines[0], (name, lines[0])


def save_png(path: Path, shape=(6, 5, 3), value=None, seed=0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 256, shape, dtype=np.uint8) if value is None else np.full(shape, value, np.uint8)
    Image.fromarray(array).save(path)


@pytest.fixture
def good_rinr(tiny_set, tmp_path) -> Path:
    path = tmp_path / "good.rinr"
    tiny_set.save(path)
    return path


def write_version(path: Path, inrs, version) -> None:
    """A file identical to a valid one but for its ``format_version``."""
    header = {"format": fileformat.MAGIC_KEY, **inrs.header(), "format_version": version}
    fileformat.write_atomic(path, fileformat._serialize(inrs.tensors(), header))


# -- encode: bad sources and options ---------------------------------------------------------

def test_truncated_image_is_named(tmp_path, capsys):
    folder = tmp_path / "imgs"
    save_png(folder / "a.png")
    save_png(folder / "b.png", seed=1)
    data = (folder / "b.png").read_bytes()
    (folder / "b.png").write_bytes(data[: len(data) // 2])
    before = listing(tmp_path)
    code, _, err = run_main(["encode", folder, "-o", tmp_path / "o.rinr", *FAST], capsys)
    assert_one_clear_line(code, err, "b.png")
    assert listing(tmp_path) == before


def test_unreadable_image_is_named(tmp_path, capsys):
    folder = tmp_path / "imgs"
    save_png(folder / "a.png")
    (folder / "c.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    code, _, err = run_main(["encode", folder, "-o", tmp_path / "o.rinr", *FAST], capsys)
    assert_one_clear_line(code, err, "c.jpg")
    assert not (tmp_path / "o.rinr").exists()


def test_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    before = listing(tmp_path)
    code, _, err = run_main(["encode", tmp_path / "empty", "-o", tmp_path / "o.rinr", *FAST], capsys)
    assert_one_clear_line(code, err, "empty")
    assert listing(tmp_path) == before


def test_mixed_sizes_without_size(tmp_path, capsys):
    folder = tmp_path / "imgs"
    save_png(folder / "a.png", (6, 5, 3))
    save_png(folder / "b.png", (7, 5, 3))
    before = listing(tmp_path)
    code, _, err = run_main(["encode", folder, "-o", tmp_path / "o.rinr", *FAST], capsys)
    assert_one_clear_line(code, err, "b.png", "--size")
    assert listing(tmp_path) == before
    # and the hint works
    assert main(["encode", str(folder), "-o", str(tmp_path / "o.rinr"), "--size", "6x5", *FAST]) == 0


@pytest.mark.parametrize("arch", ["banana", "3x", "0x15", "3x0", "999x999999", "-1x5", ""])
def test_nonsense_arch(tmp_path, capsys, arch):
    save_png(tmp_path / "imgs" / "a.png")
    before = listing(tmp_path)
    code, _, err = run_main(["encode", tmp_path / "imgs", "-o", tmp_path / "o.rinr", "--arch", arch,
                             "--steps", "5", "--quiet"], capsys)
    assert_one_clear_line(code, err, "--arch")
    assert listing(tmp_path) == before


def test_existing_output_without_overwrite(tmp_path, capsys, good_rinr):
    save_png(tmp_path / "imgs" / "a.png")
    before_bytes = good_rinr.read_bytes()
    before = listing(tmp_path)
    code, _, err = run_main(["encode", tmp_path / "imgs", "-o", good_rinr, *FAST], capsys)
    assert_one_clear_line(code, err, str(good_rinr), "--overwrite")
    assert good_rinr.read_bytes() == before_bytes and listing(tmp_path) == before
    assert main(["encode", str(tmp_path / "imgs"), "-o", str(good_rinr), "--overwrite", *FAST]) == 0
    assert good_rinr.read_bytes() != before_bytes
    assert not (tmp_path / "good.rinr.partial").exists()


@pytest.mark.parametrize("argv", [
    ["--steps", "0"], ["--lr", "-1"], ["--lr", "nan"], ["--batch-size", "0"], ["--size", "0x3"],
    ["--limit", "0"], ["--target-psnr", "-5"], ["--device", "tpu:9"], ["--bogus-flag"],
])
def test_bad_encode_options(tmp_path, capsys, argv):
    save_png(tmp_path / "imgs" / "a.png")
    before = listing(tmp_path)
    code, _, err = run_main(["encode", tmp_path / "imgs", "-o", tmp_path / "o.rinr", "--arch", "1x4",
                             "--quiet", *argv], capsys)
    assert_one_clear_line(code, err)
    assert listing(tmp_path) == before


def test_missing_source_and_output_not_rinr(tmp_path, capsys):
    code, _, err = run_main(["encode", tmp_path / "nowhere", "-o", tmp_path / "o.rinr", *FAST], capsys)
    assert_one_clear_line(code, err, "nowhere")
    save_png(tmp_path / "imgs" / "a.png")
    code, _, err = run_main(["encode", tmp_path / "imgs", "-o", tmp_path / "o.bin", *FAST], capsys)
    assert_one_clear_line(code, err, "o.bin", ".rinr")
    code, _, err = run_main(["encode", tmp_path / "imgs", "-o", tmp_path / "no" / "dir" / "o.rinr", *FAST], capsys)
    assert_one_clear_line(code, err, "does not exist")
    assert listing(tmp_path) == {"imgs", "imgs/a.png"}


# -- reading: corrupted, truncated, wrong-version and non-.rinr files ---------------------------

def corruptions(good: Path, tiny_set, tmp_path: Path) -> dict[str, Path]:
    data = good.read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little")
    out = {}
    flipped = bytearray(data)
    flipped[header_end + 17] ^= 0x55  # one payload byte
    out["checksum"] = tmp_path / "flipped.rinr"
    out["checksum"].write_bytes(bytes(flipped))
    out["truncated"] = tmp_path / "truncated.rinr"
    out["truncated"].write_bytes(data[: len(data) - 100])
    out["header"] = tmp_path / "header.rinr"
    out["header"].write_bytes(data[:8] + b"#" + data[9:])  # the JSON's first byte
    out["empty"] = tmp_path / "empty.rinr"
    out["empty"].write_bytes(b"")
    out["text"] = tmp_path / "text.rinr"
    out["text"].write_text("hello, I am not a rinr file\n" * 10)
    out["version 0"] = tmp_path / "old.rinr"
    write_version(out["version 0"], tiny_set, 0)
    out["version 7"] = tmp_path / "new.rinr"
    write_version(out["version 7"], tiny_set, 7)
    return out


EXPECT = {"checksum": "checksum", "truncated": "truncated", "header": "not a .rinr", "empty": "not a .rinr",
          "text": "not a .rinr", "version 0": "version 0", "version 7": "version 7"}


@pytest.mark.parametrize("verb", ["info", "decode"])
def test_bad_rinr_files(tmp_path, capsys, good_rinr, tiny_set, verb):
    for kind, path in corruptions(good_rinr, tiny_set, tmp_path).items():
        before = listing(tmp_path)
        argv = [verb, path] + (["-o", tmp_path / "pngs"] if verb == "decode" else [])
        code, out, err = run_main(argv, capsys)
        assert_one_clear_line(code, err, path.name, EXPECT[kind])
        assert out == "" and listing(tmp_path) == before, kind


def test_non_rinr_file(tmp_path, capsys):
    save_png(tmp_path / "photo.png")
    code, _, err = run_main(["info", tmp_path / "photo.png"], capsys)
    assert_one_clear_line(code, err, "photo.png", ".rinr")
    code, _, err = run_main(["decode", tmp_path / "photo.png", "-o", tmp_path / "d"], capsys)
    assert_one_clear_line(code, err, "photo.png")
    code, _, err = run_main(["info", tmp_path / "missing.rinr"], capsys)
    assert_one_clear_line(code, err, "missing.rinr")
    assert listing(tmp_path) == {"photo.png"}


def test_bad_decode_options(tmp_path, capsys, good_rinr):
    for argv in (["--indices", "0,99"], ["--indices", "x"], ["--indices", "-1"], ["--size", "0x0"],
                 ["--size", "99999x2"]):
        before = listing(tmp_path)
        code, _, err = run_main(["decode", good_rinr, "-o", tmp_path / "pngs", *argv], capsys)
        assert_one_clear_line(code, err)
        assert listing(tmp_path) == before, argv


# -- the real entry points: no traceback escapes ------------------------------------------------

def run_cli(*argv, module=True, timeout=120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "rapidinr"] if module else [str(Path(sys.executable).with_name("rapidinr"))]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(cmd + [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, env=env)


def test_subprocess_python_m_truncated_rinr(tmp_path, good_rinr):
    data = good_rinr.read_bytes()
    bad = tmp_path / "bad.rinr"
    bad.write_bytes(data[: len(data) // 2])
    result = run_cli("info", bad)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and "bad.rinr" in result.stderr


@pytest.mark.skipif(not Path(sys.executable).with_name("rapidinr").exists(), reason="no rapidinr script")
def test_subprocess_script_nonsense_arch(tmp_path):
    save_png(tmp_path / "imgs" / "a.png")
    result = run_cli("encode", tmp_path / "imgs", "-o", tmp_path / "o.rinr", "--arch", "lots", module=False)
    assert result.returncode == 2 and "--arch" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs"]
