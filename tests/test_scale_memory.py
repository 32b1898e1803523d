"""Peak memory of writing and reading a large pruned, quantized set: it grows with the file, with no
float copy of the whole set, no (N, P) pattern and no int64 index per weight (each costs several
times the file). Measured in a fresh process with Linux's resettable peak RSS (``clear_refs``)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# Both child scripts read their resident and peak memory from /proc and reset the peak (Linux).
RSS_HELPERS = r"""
def status(key):
    return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1]) * 1024

def reset():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
"""

SCRIPT = r"""
import json, sys
import torch
torch.set_num_threads(1)
from rapidinr.codec.inrset import INRSet, load
from rapidinr.codec.store import PackedStore
from rapidinr.core.config import Arch
""" + RSS_HELPERS + r"""
n, lossless, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
arch = Arch.parse("2x16", 1)
g = torch.Generator().manual_seed(0)
store = None
for first in range(0, n, 4096):  # the set made a block at a time, as the encoder makes it
    params = torch.randn(min(4096, n - first), arch.n_params, generator=g) * 0.1  # (b, P)
    params = params * (torch.rand(params.shape, generator=g) > 0.2)  # about 20% pruned
    part = PackedStore.from_params(params, arch, 8, "hidden", None if lossless == "none" else lossless)
    store = part.with_rows(n) if store is None else store
    store.put_rows(first, part)
inrs = INRSet(store, arch, 8, 8)
del params, part, store
reset()
base = status("VmRSS")
size = inrs.save(path)
save = status("VmHWM") - base
del inrs
reset()
base = status("VmRSS")
back = load(path)
read = status("VmHWM") - base
print(json.dumps({"file": size, "save": save, "read": read, "store": back.store.nbytes}))
"""


def _measure(n: int, lossless: str, path: Path) -> dict:
    # large blocks straight from (and back to) the OS: RSS then follows live memory, not heap reuse
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": str(1 << 17)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(n), lossless, str(path)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # two child processes of ~5 s each
@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux's resettable peak RSS")
@pytest.mark.parametrize("lossless", ["none", "zstd"])
def test_writing_and_reading_a_large_set_costs_about_the_file(tmp_path, lossless):
    """From 30k to 60k images the peaks grow with the file (zstd's own contexts, ~50 MB a thread at
    level 19 whatever the size, are the same at both sizes and cancel out). Before: writing grew
    by ~6x the file's growth (int64 indices, (N, P) patterns, four copies of the zstd stream)."""
    mb = 2**20
    small = _measure(30000, lossless, tmp_path / "small.rinr")
    large = _measure(60000, lossless, tmp_path / "large.rinr")  # ~25 MB of file, ~80 MB as float weights
    file = large["file"] - small["file"]
    # Writing: the file's tensors once (about the file) plus the mask's coding or the zstd stream.
    assert large["save"] - small["save"] <= 2.5 * file + 4 * mb, (small, large)
    # Reading: the store it returns (about the file, dequantized layers aside) plus the file's tensors.
    assert large["read"] - small["read"] <= (large["store"] - small["store"]) + 3.5 * file + 4 * mb, (small, large)


@pytest.mark.parametrize("block", [7, 64, 1000])
def test_the_mask_coded_a_block_of_rows_at_a_time_is_the_same_stream(monkeypatch, block):
    import torch

    from rapidinr.codec import prune

    g = torch.Generator().manual_seed(1)
    for share, shape in [(0.01, (300, 33)), (0.2, (50, 200)), (0.7, (7, 1000)), (0.2, (1, 5))]:
        nonzero = torch.rand(shape, generator=g) > share
        whole = prune._rice_encode(nonzero)
        monkeypatch.setattr(prune, "RICE_ENCODE_BLOCK", block)
        pieces = prune._rice_encode(nonzero)
        monkeypatch.undo()
        assert whole[0] == pieces[0] and torch.equal(whole[1], pieces[1]) and torch.equal(whole[2], pieces[2])
        assert torch.equal(prune._rice_decode(*pieces, *shape, ""), nonzero)


MERGE = r"""
import json, sys
import torch
torch.set_num_threads(1)
from rapidinr.codec.inrset import INRSet
from rapidinr.core.config import Arch, FitConfig
from rapidinr.encoding.sharded import merge_shards
""" + RSS_HELPERS + r"""
folder, shards, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
arch = Arch.parse("2x16", 1)
paths = []
for r in range(shards):
    g = torch.Generator().manual_seed(r)
    part = INRSet(torch.randn(per, arch.n_params, generator=g), arch, 8, 8, torch.full((per,), r), ["a", "b", "c", "d"],
                  torch.full((per,), 20.0 + r), {"refits": r, "encode_seconds": 1.0 + r})
    paths.append(f"{folder}/shard-{r}.rinr")
    shard_bytes = part.save(paths[-1])
del part
reset()
base = status("VmRSS")
info = merge_shards(paths, f"{folder}/merged.rinr", FitConfig(seed=0), "test")
print(json.dumps({"merge": status("VmHWM") - base, "shard": shard_bytes, **info}))
"""


@pytest.mark.slow  # a child process of ~5 s
@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux's resettable peak RSS")
def test_merging_shards_holds_one_shard_at_a_time(tmp_path):
    import torch

    from rapidinr import load

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": str(1 << 17)}
    done = subprocess.run([sys.executable, "-c", MERGE, str(tmp_path), "4", "6000"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(done.stdout.strip().splitlines()[-1])
    assert r["images"] == 24000 and r["psnr_mean"] == pytest.approx(21.5)
    # one shard (~8 MB) in memory at a time, plus the small per-image columns; before: all four and their concatenation
    assert r["merge"] <= 2 * r["shard"] + 6 * 2**20, r
    merged = load(tmp_path / "merged.rinr")
    assert merged.labels.tolist() == [r for r in range(4) for _ in range(6000)]
    assert merged.meta["refits"] == 6 and merged.meta["encode_seconds"] == 4.0 and merged.meta["shards"] == 4
    g = torch.Generator().manual_seed(2)
    assert torch.equal(merged.dense_params()[12000:18000], torch.randn(6000, merged.arch.n_params, generator=g))
    assert not any(tmp_path.glob("shard-*"))  # the shards are removed


def test_zstd_frames_decode_and_never_depend_on_the_thread_count(monkeypatch, tmp_path):
    import torch

    from rapidinr import load
    from rapidinr.codec import store as stores
    from rapidinr.codec.inrset import INRSet
    from rapidinr.core.config import Arch
    from rapidinr.core.errors import UserError

    arch = Arch.parse("2x16", 3)
    g = torch.Generator().manual_seed(4)
    params = torch.randn(40, arch.n_params, generator=g) * (torch.rand(40, arch.n_params, generator=g) > 0.2)
    one = stores.PackedStore.from_params(params, arch, 8, "hidden", "zstd")
    single = one.tensors()["zstd"]
    assert "zstd_frames" not in one.header()  # small: one frame, the header and bytes earlier versions wrote
    monkeypatch.setattr(stores, "ZSTD_FRAME_BYTES", 1000)  # many frames
    by_threads = {}
    for threads in (1, 2):
        monkeypatch.setattr(stores, "usable_cores", lambda: threads)
        store = stores.PackedStore.from_params(params, arch, 8, "hidden", "zstd")
        by_threads[threads] = store.tensors()["zstd"]
        frames = store.header()["zstd_frames"]
        assert len(frames) > 5 and sum(frames) == by_threads[threads].numel()
    assert torch.equal(by_threads[1], by_threads[2]) and not torch.equal(by_threads[1], single)
    inrs = INRSet(store, arch, 8, 8)
    inrs.save(tmp_path / "framed.rinr")
    assert torch.equal(load(tmp_path / "framed.rinr").dense_params(), one.dense())
    head = dict(store.header())
    tensors = {"zstd": by_threads[1]}
    for frames in ([by_threads[1].numel()], head["zstd_frames"][:-1], [0] + head["zstd_frames"], "x"):
        with pytest.raises(UserError, match="zstd"):
            stores._unzip("f.rinr", tensors, head["packed"], frames)


def _chunked_set(arch, n: int, zero_share: float, bits: int, layers: str, lossless, seed: int = 0):
    """A PackedStore set of ``n`` images made of chunks of 7 rows (uneven on purpose), and the chunks."""
    from rapidinr.codec.store import PackedStore

    g = torch.Generator().manual_seed(seed)
    params = torch.randn(n, arch.n_params, generator=g) * 0.1  # (n, P)
    params = params * (torch.rand(params.shape, generator=g) >= zero_share)
    whole = PackedStore.from_params(params, arch, bits, layers, lossless)
    chunks = [PackedStore.from_params(params[i : i + 7], arch, bits, layers, lossless) for i in range(0, n, 7)]
    return whole, chunks


@pytest.mark.parametrize("zero_share,bits,layers,lossless", [
    (0.0, 8, "hidden", None),     # nothing pruned (codes that round to 0 still are zeros)
    (0.5, 8, "all", None),        # half pruned
    (0.03, 16, "hidden", None),   # a few zeros: Golomb-Rice gaps across chunk borders
    (0.2, 32, "none", None),      # pruned floats
    (0.2, 8, "hidden", "zstd"),   # the zstd stage over the stream
])
def test_a_set_written_from_its_chunks_is_the_file_of_the_whole_set(tmp_path, zero_share, bits, layers, lossless):
    """The encoder writes the file from the checkpointed chunks, one at a time (``FileForm`` of the
    chunks): byte for byte the file of the same set held whole, for every mask coding."""
    from rapidinr.codec.inrset import INRSet, load, write_set
    from rapidinr.core.config import Arch

    arch = Arch.parse("3x12", 3)
    whole, chunks = _chunked_set(arch, 45, zero_share, bits, layers, lossless)
    psnr, labels = torch.linspace(20, 40, 45), torch.arange(45) % 3
    INRSet(whole, arch, 8, 8, labels, ["a", "b", "c"], psnr, {"k": 1}).save(tmp_path / "whole.rinr")
    form = chunks[0].like({k: v[:0] for k, v in chunks[0].parts().items()}).file_form(lambda: iter(chunks))
    size = write_set(tmp_path / "chunks.rinr", form, arch, 8, 8, labels, ["a", "b", "c"], psnr, {"k": 1})
    assert (tmp_path / "chunks.rinr").read_bytes() == (tmp_path / "whole.rinr").read_bytes()
    assert size == (tmp_path / "whole.rinr").stat().st_size
    assert torch.equal(load(tmp_path / "chunks.rinr").dense_params(), whole.dense())


def test_the_mask_coded_from_row_blocks_is_the_mask_of_the_whole_pattern():
    from rapidinr.codec.prune import pack_mask, pack_mask_blocks, unpack_mask

    g = torch.Generator().manual_seed(3)
    codings = set()
    for share, width in ((0.0, 37), (0.01, 37), (0.1, 37), (0.5, 37), (0.9, 37), (0.5, 32)):
        nonzero = torch.rand(50, width, generator=g) >= share  # (N, G)
        coding, whole = pack_mask(nonzero)
        codings.add(coding.rstrip("0123456789"))
        blocks = [nonzero[i : i + 6] for i in range(0, 50, 6)]
        coding_b, pieces = pack_mask_blocks(lambda: iter(blocks), width)
        assert coding_b == coding and whole.keys() == pieces.keys()
        assert all(torch.equal(whole[k], pieces[k]) for k in whole)
        assert torch.equal(unpack_mask(coding, pieces, 50, width), nonzero)
    assert codings == {"none", "rice", "bitmask"}
