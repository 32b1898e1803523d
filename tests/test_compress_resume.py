"""Compression rounds and quantization run chunk by chunk and are checkpointed like round 1: a kill
during compression, then ``resume``, gives the uninterrupted run's file and redoes no finished chunk."""
from __future__ import annotations

import pytest
import torch

from rapidinr.codec import fileformat
from rapidinr.codec.prune import PruneConfig, Schedule
from rapidinr.codec.quantize import QuantConfig
from rapidinr.core.config import Arch, FitConfig
from rapidinr.encoding import compress as compress_module
from rapidinr.encoding import runner
from rapidinr.encoding.compress import CompressConfig, compress
from rapidinr.encoding.fit import fit
from rapidinr.sources.datasets import ImageSet

ARCH = Arch.parse("2x8", 1)
CFG = FitConfig(steps=12, lr=1e-2, chunk_size=4)  # 12 images: three chunks
COMPRESSION = CompressConfig(prune=PruneConfig(l1_ratio=0.2, schedule=Schedule(((10.0, 0.2), (40.0, 0.5))),
                                               retrain_steps=6),
                             quant=QuantConfig(bits=8, bias_bits=16, finetune_steps=3), lossless="zstd")


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    ramp = torch.linspace(0, 1, 6)
    base = ramp[:, None] * torch.rand(12, 1, 1, generator=g) + ramp[None, :] * torch.rand(12, 1, 1, generator=g)
    return ((base * 0.7 + torch.rand(12, 6, 6, generator=g) * 0.2) * 255).to(torch.uint8)[:, None]  # (12, 1, 6, 6)


def _without_timings(value):
    """A header with every measured duration removed (they differ between any two runs)."""
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items()
                if k not in ("seconds", "encode_seconds", "file_sha256")}  # the digest covers the timings
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def _file(path):
    header, tensors, _ = fileformat.read(path)
    header = _without_timings(header)
    header["meta"].pop("resumed_chunks"), header["meta"].pop("resumed_compressed_chunks")
    return header, tensors


class Killed(Exception):
    pass


def test_a_kill_during_compression_resumes_to_the_same_file_redoing_only_the_chunk_in_flight(images, tmp_path,
                                                                                           monkeypatch):
    whole = tmp_path / "whole.rinr"
    runner.encode_to_file(ImageSet(images), whole, ARCH, CFG, "cpu", progress=False, compression=COMPRESSION)

    out = tmp_path / "set.rinr"
    real_retrain = compress_module.retrain
    retrains = []

    def retrain_then_die(*args, **kwargs):  # chunk 1's second retraining round dies half way
        retrains.append(1)
        if len(retrains) == 4:
            raise Killed
        return real_retrain(*args, **kwargs)

    monkeypatch.setattr(compress_module, "retrain", retrain_then_die)
    with pytest.raises(Killed):
        runner.encode_to_file(ImageSet(images), out, ARCH, CFG, "cpu", progress=False, compression=COMPRESSION)
    monkeypatch.undo()
    partial = tmp_path / "set.rinr.partial"
    assert sorted(p.name for p in partial.glob("packed-*")) == ["packed-000000.rinrchunk"]
    assert sorted(p.name for p in partial.glob("chunk-*")) == ["chunk-000000.rinrchunk", "chunk-000001.rinrchunk"]

    compressed, fitted = [], []
    real_chunk, real_fit = runner.compress_chunk, runner.fit
    monkeypatch.setattr(runner, "compress_chunk", lambda images, *a, **k: compressed.append(len(images))
                        or real_chunk(images, *a, **k))
    monkeypatch.setattr(runner, "fit", lambda images, *a, **k: fitted.append(len(images)) or real_fit(images, *a, **k))
    resumed = runner.encode_to_file(ImageSet(images), out, ARCH, CFG, "cpu", progress=False, compression=COMPRESSION,
                                    resume=True)
    assert compressed == [4, 4]  # chunks 1 (in flight at the kill) and 2; chunk 0's compression is kept
    assert fitted == [4]  # only chunk 2 was never fitted; chunk 1's round 1 is reused
    assert resumed.meta["resumed_compressed_chunks"] == 1 and resumed.meta["resumed_chunks"] == 2
    assert not partial.exists()

    (head_a, tensors_a), (head_b, tensors_b) = _file(whole), _file(out)
    assert head_a == head_b
    assert tensors_a.keys() == tensors_b.keys() and all(torch.equal(tensors_a[k], tensors_b[k]) for k in tensors_a)


def test_compressing_chunk_by_chunk_equals_compressing_the_set_whole(images):
    """The per-chunk pipeline gives exactly what one whole-set pass over the same round-1 weights gives."""
    params = fit(images, ARCH, CFG, progress=False).params
    chunked = compress(images, ARCH, CFG, COMPRESSION, init=params, progress=False)
    whole = compress(images, ARCH, FitConfig(steps=12, lr=1e-2, chunk_size=12), COMPRESSION, init=params,
                     progress=False)
    assert torch.equal(chunked.dense_params(), whole.dense_params()) and torch.equal(chunked.psnr, whole.psnr)
    rounds = [r["round"] for r in chunked.meta["compression"]["rounds"]]
    assert rounds == ["fit", "l1-prune", "dynamic-prune", "quantize-8-hidden"]
    assert 0.2 <= chunked.meta["compression"]["rounds"][2]["ratio_mean"] <= 0.5


def test_a_packed_chunk_of_other_compression_settings_is_redone(images, tmp_path, monkeypatch):
    out = tmp_path / "set.rinr"
    monkeypatch.setattr(runner.Checkpoint, "remove", lambda self: None)  # as if killed before the end
    runner.encode_to_file(ImageSet(images), out, ARCH, CFG, "cpu", progress=False, compression=COMPRESSION)
    out.unlink()
    monkeypatch.undo()
    other = CompressConfig(prune=PruneConfig(l1_ratio=0.3, retrain_steps=6), quant=QuantConfig(bits=8))
    resumed = runner.encode_to_file(ImageSet(images), out, ARCH, CFG, "cpu", progress=False, compression=other,
                                    resume=True)
    assert resumed.meta["resumed_compressed_chunks"] == 0 and resumed.meta["resumed_chunks"] == 3  # round 1 kept
    fresh = runner.encode_to_file(ImageSet(images), tmp_path / "fresh.rinr", ARCH, CFG, "cpu", progress=False,
                                  compression=other)
    assert torch.equal(resumed.dense_params(), fresh.dense_params())
