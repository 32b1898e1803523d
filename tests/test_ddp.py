"""Past one machine, on the CPU: `torchrun --nproc_per_node=2` with the gloo backend.

- training: the two ranks see disjoint samples that together cover every epoch;
- encoding: one shard per rank, merged into a file equal to a single-process encode.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

import rapidinr
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.errors import UserError
from rapidinr.encoding import sharded
from rapidinr.encoding.sharded import shard_range
from rapidinr.training.loaders import epoch_indices


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(nproc: int, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same thread count in every run: same bits
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", "-m", "rapidinr", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_shard_range_whole_chunks():
    ranges = [shard_range(100, 16, r, 3) for r in range(3)]
    assert ranges[0][0] == 0 and ranges[-1][1] == 100
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert all(start % 16 == 0 for start, _ in ranges)
    assert shard_range(10, 16, 1, 2) == (10, 10)  # more ranks than chunks: an empty shard


def test_ranks_slice_one_permutation():
    parts = [epoch_indices(64, 2, seed=1, rank=r, world=2) for r in range(2)]
    assert set(parts[0].tolist()).isdisjoint(parts[1].tolist())
    assert sorted(torch.cat(parts).tolist()) == list(range(64))


@pytest.mark.slow
def test_ddp_training_two_ranks_disjoint_and_covering(tmp_path):
    out = tmp_path / "ddp.json"
    _torchrun(2, "train", "--data", "default", "--pipeline", "tensor", "--limit", "32", "--test-limit", "16", "--size", "8x8",
              "--epochs", "2", "--batch-size", "8", "--warmup", "0", "--check-shards", "--results", str(out),
              "--quiet")
    doc = json.loads(out.read_text())
    assert doc["results"]["world_size"] == 2
    checks = doc["results"]["shard_check"]
    assert len(checks) == 2
    for check in checks:
        assert check == {"per_rank": [16, 16], "disjoint": True, "covered": 32, "of": 32, "left_out": 0}
    assert doc["results"]["epochs"][0]["images"] == 16  # each rank trains on its half


@pytest.mark.slow
@pytest.mark.parametrize("init,compression", [
    ("random", []), ("learned", []),
    ("random", ["--prune-l1", "0.2", "--retrain-steps", "3", "--quant-bits", "8", "--lossless", "zstd"])])
def test_sharded_encode_merges_to_the_single_process_set(tmp_path, init, compression):
    """Each rank encodes (and compresses) its chunks; the merged file holds the single-process set."""
    one, two = tmp_path / "one.rinr", tmp_path / "two.rinr"
    common = ["--limit", "24", "--steps", "15", "--batch-size", "8", "--quiet", "--init", init, *compression]
    _torchrun(1, "encode", "default", "-o", str(one), *common)
    done = _torchrun(2, "encode", "default", "-o", str(two), *common)
    assert "from 2 shards" in done.stdout
    a, b = rapidinr.load(one), rapidinr.load(two)
    assert torch.equal(a.dense_params(), b.dense_params())
    assert torch.equal(a.psnr, b.psnr) and torch.equal(a.labels, b.labels)
    assert a.class_names == b.class_names and b.meta["shards"] == 2
    assert a.meta["init"] == b.meta["init"] and b.meta["init"]["kind"] == init
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.rinr", "two.rinr"]  # shards removed
    assert a.info()["param_encoding"] == b.info()["param_encoding"] == ("packed-v1" if compression else "dense-f32")
    if compression:  # the mask coded over the whole set, as one process codes it: the same payload
        assert a.store.header()["mask_coding"] == b.store.header()["mask_coding"]
        assert a.file_bytes == pytest.approx(b.file_bytes, abs=64)  # headers differ (shards, seconds), not weights
        rounds_a, rounds_b = a.meta["compression"]["rounds"], b.meta["compression"]["rounds"]
        assert [r["round"] for r in rounds_a] == [r["round"] for r in rounds_b]
        assert [r["psnr_mean"] for r in rounds_a] == pytest.approx([r["psnr_mean"] for r in rounds_b])


def test_a_sharded_encode_refuses_the_compact_store(tmp_path):
    from rapidinr.encoding.compress import CompactConfig, CompressConfig

    images = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    with pytest.raises(UserError, match="whole set"):
        sharded.encode_sharded(images, tmp_path / "x.rinr", Arch.parse("1x4", 1), FitConfig(steps=1), "cpu",
                               compression=CompressConfig(compact=CompactConfig()))
    assert list(tmp_path.iterdir()) == []


SLOW_MERGE = r"""
import datetime, sys, time
import torch
import torch.distributed as dist

# the job's own group, made by the caller with a timeout far shorter than the merge below takes
dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=3))
from rapidinr.core.config import Arch, FitConfig
from rapidinr.encoding import sharded

real = sharded.merge_shards
sharded.merge_shards = lambda *a, **k: time.sleep(8) or real(*a, **k)  # a merge of many large shards
images = torch.randint(0, 255, (8, 1, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
info = sharded.encode_sharded(images, sys.argv[1], Arch.parse("1x4", 1), FitConfig(steps=2, chunk_size=4), "cpu",
                              progress=False)
print("merged", info["images"] if info else None)
"""


@pytest.mark.slow
def test_the_ranks_wait_out_a_merge_longer_than_the_jobs_timeout(tmp_path):
    script = tmp_path / "slow_merge.py"
    script.write_text(SLOW_MERGE)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", str(script), str(tmp_path / "set.rinr")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "merged 8" in done.stdout and len(rapidinr.load(tmp_path / "set.rinr")) == 8
