"""Hostile files: a small file cannot exhaust memory, and a file verifies itself.

The memory bombs run the real CLI in a child process under an address-space limit
(RLIMIT_AS) of the child's own baseline plus 1.5 GiB, far below this machine's memory: each must
end as one error line and exit 2, no traceback. Before the fixes each of them allocated
gigabytes (issue 15: 3.1 GB for an 8 MiB Rice unary stream, 5.3 GB for a 64x1024 arch, 25.8 GB
for ``decode --size 16384x16384``) and died with a MemoryError traceback under such a limit.
"""
from __future__ import annotations

import json
import os
import random
import resource
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from rapidinr import INRSet, UserError, load
from rapidinr.codec import fileformat
from rapidinr.codec.prune import l1_mask
from rapidinr.codec.store import PackedStore, zstd_pack
from rapidinr.core.config import Arch
from rapidinr.core.siren import init_params

ROOT = Path(__file__).resolve().parent.parent
BASELINE_AS = 3_400 << 20  # importing torch maps ~3.1 GiB of address space (measured: VmPeak of `info`)
LIMIT_AS = BASELINE_AS + (1_536 << 20)  # what the child may map: baseline + 1.5 GiB


def run_limited(argv: list, tmp: Path, limit: int = LIMIT_AS) -> subprocess.CompletedProcess:
    """``python -m rapidinr ARGV`` under an address-space limit; returns the finished process."""
    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "rapidinr", *map(str, argv)], preexec_fn=cap, env=env, cwd=tmp,
                          capture_output=True, text=True, timeout=120, check=False)


def assert_refused(proc: subprocess.CompletedProcess, *words: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("rapidinr: error: "), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def packed_file(path: Path, replace: dict, header_changes: dict | None = None, n: int = 2, pad: int = 0) -> None:
    """A signed version-2 packed (zstd) file of ``n`` images whose zstd table holds ``replace``d
    tensors; ``pad`` bytes of noise in an extra tensor (ignored by the reader) make it larger."""
    arch = Arch(2, 8, 3)
    params = init_params(arch, range(n))
    params = params * l1_mask(params, arch, 0.5)
    inrs = INRSet(PackedStore.from_params(params, arch, bits=8), arch, 4, 4)
    header = {"format": fileformat.MAGIC_KEY, "format_version": fileformat.FORMAT_VERSION, **inrs.header()}
    inner = {k: v for k, v in inrs.tensors().items() if not k.startswith("mask_")}
    inner.update(replace)
    table, frame, frames = zstd_pack(inner, level=3)
    framed = {"zstd_frames": frames} if len(frames) > 1 else {}  # past 4 MiB, as PackedStore writes it
    header.update({"lossless": "zstd", "packed": table, **framed, **(header_changes or {})})
    tensors = {"zstd": frame, "psnr": inrs.psnr}
    if pad:
        tensors["pad"] = torch.randint(0, 256, (pad,), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    path.write_bytes(fileformat._serialize(tensors, header))


@pytest.mark.slow  # a child process: ~6 s to import torch on this 2-core machine
def test_the_limit_leaves_room_for_honest_work(tiny_set, tmp_path):
    tiny_set.save(tmp_path / "good.rinr")
    assert run_limited(["info", "good.rinr"], tmp_path).returncode == 0
    proc = run_limited(["decode", "good.rinr", "-o", "out"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "out").iterdir())) == len(tiny_set)


@pytest.mark.slow  # a child process: ~6 s to import torch on this 2-core machine
@pytest.mark.parametrize("mib", [8, 60])
def test_rice_bomb_is_refused_before_it_allocates(tmp_path, mib):
    """An 8 (60) MiB unary stream of zeros, Rice k=0: 67 (503) million codes for 2 x 355 weights."""
    zeros = torch.zeros(mib << 20, dtype=torch.uint8)
    packed_file(tmp_path / "bomb.rinr", {"mask_unary": zeros, "mask_remainders": torch.zeros(0, dtype=torch.uint8)},
                {"mask_coding": "rice0"})
    assert (tmp_path / "bomb.rinr").stat().st_size < 64 << 10  # a small file
    start = time.perf_counter()
    assert_refused(run_limited(["info", "bomb.rinr"], tmp_path), "bomb.rinr", "pruning mask (rice)")
    assert time.perf_counter() - start < 60


@pytest.mark.slow  # a child process: ~6 s to import torch on this 2-core machine
def test_rice_remainders_bomb_is_refused(tmp_path):
    """Long remainders (k=31) beside a stream of real codes: bounded pieces, then refused."""
    unary = torch.zeros(1 << 12, dtype=torch.uint8)
    remainders = torch.full((4 << 20,), 255, dtype=torch.uint8)
    packed_file(tmp_path / "bomb.rinr", {"mask_unary": unary, "mask_remainders": remainders}, {"mask_coding": "rice31"})
    assert_refused(run_limited(["info", "bomb.rinr"], tmp_path), "bomb.rinr", "pruning mask (rice)")


@pytest.mark.slow  # a child process: ~6 s to import torch on this 2-core machine
def test_huge_arch_is_refused(tmp_path):
    """The issue's 225 KB file of one image claiming arch 64x1024 (66 M parameters): large enough to
    pass the old 4-bytes-a-weight guard, it cost `info` 5.3 GB in lists of positions."""
    big = {"layers": 64, "hidden": 1024, "w0": 30.0, "channels": 3}
    packed_file(tmp_path / "bomb.rinr", {}, {"arch": big, "params_per_image": Arch(64, 1024, 3).n_params}, n=1,
                pad=225 << 10)
    assert_refused(run_limited(["info", "bomb.rinr"], tmp_path), "bomb.rinr", "64x1024")
    assert_refused(run_limited(["decode", "bomb.rinr", "-o", "out", "--size", "32x32"], tmp_path), "64x1024")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # a child process: ~6 s to import torch on this 2-core machine
def test_expansion_guard_counts_what_loading_allocates(tiny_set, tmp_path):
    """Within the arch bound, a header whose images x weights the file cannot hold is refused."""
    arch = Arch(8, 360, 3)  # ~0.9 M parameters, under the bound
    header = {"format": fileformat.MAGIC_KEY, "format_version": 2, **tiny_set.header(),
              "arch": arch.to_json(), "params_per_image": arch.n_params, "images": 4000,
              "has_labels": False, "class_names": []}
    tensors = {"params": torch.zeros(0, dtype=torch.float32), "psnr": torch.zeros(4000)}
    (tmp_path / "bomb.rinr").write_bytes(fileformat._serialize(tensors, header))
    assert_refused(run_limited(["info", "bomb.rinr"], tmp_path), "far more than")


@pytest.mark.slow  # a child process: ~6 s to import torch on this 2-core machine
def test_decode_size_over_the_budget_is_refused(tiny_set, tmp_path):
    tiny_set.save(tmp_path / "small.rinr")
    assert_refused(run_limited(["decode", "small.rinr", "-o", "D", "--size", "16384x16384"], tmp_path),
                   "--size 16384x16384", "--memory-mb")
    assert not (tmp_path / "D").exists()


@pytest.mark.slow  # a child process: ~6 s to import torch on this 2-core machine
def test_decode_of_a_huge_stored_size_is_refused(tiny_set, tmp_path):
    header = {"format": fileformat.MAGIC_KEY, "format_version": 2, **tiny_set.header(),
              "height": 16384, "width": 16384}
    (tmp_path / "big.rinr").write_bytes(fileformat._serialize(tiny_set.tensors(), header))
    assert_refused(run_limited(["decode", "big.rinr", "-o", "D"], tmp_path), "16384x16384")
    assert not (tmp_path / "D").exists()
    with pytest.raises(UserError, match="GiB"):  # the API states its own limit
        load(tmp_path / "big.rinr").decode()


@pytest.mark.slow  # a child process: ~6 s to import torch on this 2-core machine
def test_a_million_empty_class_names_are_refused(tiny_set, tmp_path):
    header = {"format": fileformat.MAGIC_KEY, "format_version": 2, **tiny_set.header(), "class_names": [""] * 10**6}
    (tmp_path / "names.rinr").write_bytes(fileformat._serialize(tiny_set.tensors(), header))
    assert_refused(run_limited(["info", "names.rinr"], tmp_path), "names.rinr", "class_names")


@pytest.mark.parametrize("names,says", [
    (["a", "a", "c", "d"], "more than once"), (["a", "b"], "labels must be in 0..1"), (["a", "", "c", "d"], "1..256"),
])
def test_class_names_unique_and_consistent_with_labels(tiny_set, tmp_path, names, says):
    header = {"format": fileformat.MAGIC_KEY, "format_version": 2, **tiny_set.header(), "class_names": names}
    (tmp_path / "names.rinr").write_bytes(fileformat._serialize(tiny_set.tensors(), header))
    with pytest.raises(UserError, match=says):
        load(tmp_path / "names.rinr")


# -- --memory-mb honoured for huge images ---------------------------------------------------------

def _png(path: Path, height: int, width: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)


@pytest.mark.slow  # a child process: ~6 s to import torch on this 2-core machine
@pytest.mark.parametrize("extra,says", [
    (["--memory-mb", "64"], "--memory-mb 64"),  # 2000x1500 needs ~2.2 GiB
    (["--size", "16384x16384"], "16384x16384"),
    (["--memory-mb", "nan"], "--memory-mb"), (["--memory-mb", "inf"], "--memory-mb"),
    (["--seed", "99999999999999999999"], "--seed"),
])
def test_encode_memory_and_seed_refused_before_any_work(tmp_path, extra, says):
    _png(tmp_path / "imgs" / "a.png", 1500, 2000)
    proc = run_limited(["encode", "imgs", "-o", "out.rinr", "--steps", "2", "--quiet", *extra], tmp_path)
    assert_refused(proc, says)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs"]  # no partial/, no manifest


# -- a file that verifies itself ---------------------------------------------------------------------

def _flip_file(tmp: Path, version: int) -> tuple[bytes, int]:
    """A small valid file of ``version`` with a header of >= 10,000 bits; (bytes, header bytes)."""
    g = torch.Generator().manual_seed(1)
    arch = Arch(2, 3, 1)
    inrs = INRSet(torch.randn(3, arch.n_params, generator=g), arch, 4, 5, torch.tensor([0, 2, 1]),
                  ["cat", "dog", "eel"], torch.tensor([20.0, 21.0, 22.5]), {"source": "flips", "note": "x" * 400})
    header = {"format": fileformat.MAGIC_KEY, "format_version": version, **inrs.header()}
    data = fileformat._serialize(inrs.tensors(), header)
    return data, 8 + int.from_bytes(data[:8], "little")


def _silent_changes(data: bytes, head: int, path: Path, flips: int) -> tuple[int, int]:
    """(flips that loaded with another meaning, flips that loaded at all) over ``flips`` bit flips."""
    import warnings

    path.write_bytes(data)
    fd = os.open(path, os.O_RDWR)  # each flip is written in place and undone: no file rewrites
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_header, ref_tensors, _ = fileformat.read(path)
        silent = loaded = 0
        try:
            for i in range(flips):
                bit = i % (8 * head)  # every header bit, then round again
                os.pwrite(fd, bytes([data[bit // 8] ^ (1 << (bit % 8))]), bit // 8)
                try:
                    header, tensors, _ = fileformat.read(path)
                except UserError:
                    continue
                finally:
                    os.pwrite(fd, data[bit // 8 : bit // 8 + 1], bit // 8)
                loaded += 1
                same = header == ref_header and tensors.keys() == ref_tensors.keys() and all(
                    tensors[k].dtype == ref_tensors[k].dtype and torch.equal(tensors[k], ref_tensors[k])
                    for k in tensors)
                silent += not same
        finally:
            os.close(fd)
    return silent, loaded


def test_no_single_bit_header_flip_changes_meaning_silently(tmp_path):
    data, head = _flip_file(tmp_path, 2)
    assert 8 * head >= 10_000
    silent, loaded = _silent_changes(data, head, tmp_path / "flip.rinr", 10_000)
    print(f"\nversion 2: {silent} silent meaning changes, {loaded} harmless loads of 10000 header bit flips")
    assert silent == 0


def test_version_1_headers_were_unprotected(tmp_path):
    """The same detector finds silent changes in a version-1 file (why version 2 exists)."""
    data, head = _flip_file(tmp_path, 1)
    silent, _ = _silent_changes(data, head, tmp_path / "flip.rinr", 2_000)
    assert silent > 0


def _edit(data: bytes, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new) and data.count(old) >= 1, old
    return data.replace(old, new, 1)


@pytest.mark.parametrize("old,new", [
    (b'\\"w0\\": 30.0', b'\\"w0\\": 10.0'), (b'\\"height\\": 12', b'\\"height\\": 64'),
    (b'\\"layers\\": 2, \\"hidden\\": 8', b'\\"layers\\": 1, \\"hidden\\": 9'),
    (b'[\\"a\\", \\"b\\"', b'[\\"b\\", \\"a\\"'), (b'has_labels', b'has_lbbels'),
])
def test_same_length_header_edits_are_refused(tiny_set, tmp_path, old, new):
    tiny_set.save(tmp_path / "good.rinr")
    (tmp_path / "edit.rinr").write_bytes(_edit((tmp_path / "good.rinr").read_bytes(), old, new))
    with pytest.raises(UserError, match="checksum mismatch"):
        load(tmp_path / "edit.rinr")


def test_duplicate_keys_are_refused_even_when_resigned(tiny_set, tmp_path):
    header = {"format": fileformat.MAGIC_KEY, "format_version": 2, **tiny_set.header()}
    data = fileformat._serialize(tiny_set.tensors(), header)
    size = int.from_bytes(data[:8], "little")
    outer = json.loads(data[8 : 8 + size])
    ours = outer["__metadata__"]["rapidinr"]
    outer["__metadata__"]["rapidinr"] = ours[:-1] + ', "height": 64}'  # a second height: last would win
    text = json.dumps(outer).encode()
    text += b" " * (-len(text) % 8)
    (tmp_path / "dup.rinr").write_bytes(len(text).to_bytes(8, "little") + text + data[8 + size :])
    with pytest.raises(UserError, match="duplicate key 'height'"):
        load(tmp_path / "dup.rinr")
    table = data[8 : 8 + size].replace(b'{"__metadata__"', b'{"psnr":{},"__metadata__"', 1)
    table += b" " * (-len(table) % 8)
    (tmp_path / "dup2.rinr").write_bytes(len(table).to_bytes(8, "little") + table + data[8 + size :])
    with pytest.raises(UserError, match="duplicate key 'psnr'"):
        load(tmp_path / "dup2.rinr")


def test_written_file_is_plain_safetensors_and_serialized_once(tiny_set, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    calls = []
    real = fileformat._head_bytes
    monkeypatch.setattr(fileformat, "_head_bytes", lambda *a: calls.append(1) or real(*a))
    size = tiny_set.save(tmp_path / "set.rinr")
    assert len(calls) == 1 and size == (tmp_path / "set.rinr").stat().st_size
    assert torch.equal(load_file(tmp_path / "set.rinr")["params"], tiny_set.dense_params().cpu())
    fresh = INRSet(tiny_set.dense_params(), tiny_set.arch, tiny_set.height, tiny_set.width, tiny_set.labels,
                   tiny_set.class_names, tiny_set.psnr, tiny_set.meta)
    assert fresh.info()["file_bytes"] == size  # info() from the tensor table, nothing written


def test_rice_decoder_round_trips_in_small_pieces(monkeypatch):
    from rapidinr.codec import prune

    rng = random.Random(3)
    for piece in (1, 2, 1 << 15):
        monkeypatch.setattr(prune, "RICE_PIECE_BYTES", piece)
        for _ in range(15):
            n, p = rng.randint(1, 5), rng.randint(1, 300)
            nonzero = torch.rand(n, p, generator=torch.Generator().manual_seed(rng.randint(0, 99))) > rng.random()
            if (~nonzero).any():
                k, unary, remainders = prune._rice_encode(nonzero)
                assert torch.equal(prune._rice_decode(k, unary, remainders, n, p, "x"), nonzero)


def test_write_atomic_fsyncs_the_folder_and_honours_the_umask(tmp_path, monkeypatch):
    from rapidinr.core import files

    kinds = []
    real = os.fsync
    monkeypatch.setattr(files.os, "fsync", lambda fd: kinds.append(stat.S_ISDIR(os.fstat(fd).st_mode)) or real(fd))
    monkeypatch.setattr(files.os, "umask", lambda *a: pytest.fail("write_atomic changed the process umask"))
    files.write_atomic(tmp_path / "x.bin", lambda handle: handle.write(b"abc"))
    assert kinds == [False, True]  # the file, then its folder after the rename
    status = Path("/proc/self/status").read_text().splitlines()
    umask = int(next(line.split()[1] for line in status if line.startswith("Umask:")), 8)
    assert stat.S_IMODE((tmp_path / "x.bin").stat().st_mode) == 0o666 & ~umask
    assert (tmp_path / "x.bin").read_bytes() == b"abc" and os.listdir(tmp_path) == ["x.bin"]


def test_a_header_with_its_own_sha256_field_keeps_it(tmp_path):
    """Learned-init headers carry the weights' sha256; the file's digest has a key of its own."""
    fileformat.write(tmp_path / "x.rinr", {"sha256": "ab" * 32, "meta": {"sha256": "0" * 64}}, {"t": torch.ones(3)})
    header, tensors, _ = fileformat.read(tmp_path / "x.rinr")
    assert header["sha256"] == "ab" * 32 and header["meta"] == {"sha256": "0" * 64}
    assert len(header[fileformat.DIGEST_KEY]) == 64 and torch.equal(tensors["t"], torch.ones(3))
    with pytest.raises(UserError, match="the file's own"):
        fileformat.write(tmp_path / "y.rinr", {fileformat.DIGEST_KEY: "x"}, {"t": torch.ones(3)})
