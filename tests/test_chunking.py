"""The encoder's chunk size on CUDA from the device's free memory (stood in for on the CPU)."""
from __future__ import annotations

import dataclasses

import torch

from rapidinr.core.config import Arch, FitConfig
from rapidinr.encoding import runner
from rapidinr.encoding.fit import chunk_size_for


def test_chunk_size_follows_free_device_memory_as_a_power_of_two(monkeypatch):
    arch = Arch.parse("3x15", 3)
    free = {"bytes": 8 << 30}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free["bytes"], 80 << 30))
    big = runner.device_chunking(FitConfig(), arch, 32 * 32, "cuda")
    expected = chunk_size_for(arch, 32 * 32, dataclasses.replace(FitConfig(), memory_budget_mb=4096))
    assert big.chunk_size == 1 << (expected.bit_length() - 1) and big.chunk_size > expected // 2
    assert big.chunk_size > chunk_size_for(arch, 32 * 32, FitConfig())  # more than the fixed 1 GB gives
    free["bytes"] = 256 << 20  # a small or busy GPU: fewer images at once, never the fixed 1 GB
    small = runner.device_chunking(FitConfig(), arch, 32 * 32, "cuda")
    assert small.chunk_size < chunk_size_for(arch, 32 * 32, FitConfig())
    free["bytes"] = int(0.97 * (8 << 30))  # a little fuller on resume: the same chunks
    assert runner.device_chunking(FitConfig(), arch, 32 * 32, "cuda").chunk_size == big.chunk_size


def test_cpu_and_a_fixed_chunk_size_are_left_alone(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (8 << 30, 80 << 30))
    arch = Arch.parse("3x15", 3)
    assert runner.device_chunking(FitConfig(), arch, 1024, "cpu") == FitConfig()
    fixed = FitConfig(chunk_size=7)
    assert runner.device_chunking(fixed, arch, 1024, "cuda") == fixed
