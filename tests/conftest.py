"""Shared fixtures: tiny image sets and a tiny encoded .rinr, CPU only."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from rapidinr import encode


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Every test on one torch thread: the sizes are tiny, and on a 2-core machine shared with
    subprocess tests two threads mostly wait for each other (measured 7-20x slower under load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    """GPU tests skip without CUDA; they never fail for lack of a GPU."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_images() -> torch.Tensor:
    """Eight 12×10 RGB images with some structure (gradients plus noise), uint8 (8, 3, 12, 10)."""
    g = torch.Generator().manual_seed(0)
    ys = torch.linspace(0, 1, 12)[:, None]
    xs = torch.linspace(0, 1, 10)[None, :]
    base = torch.stack([ys * xs, ys.expand(12, 10), xs.expand(12, 10)])  # (3, 12, 10)
    noise = torch.rand(8, 3, 12, 10, generator=g) * 0.3
    return ((base[None] * 0.7 + noise) * 255).round().clamp(0, 255).to(torch.uint8)


@pytest.fixture(scope="session")
def tiny_set(tiny_images):
    """The tiny images encoded with a 2x8 SIREN for 60 steps (labels 0..3)."""
    labels = torch.arange(8) % 4
    return encode(tiny_images, arch="2x8", steps=60, lr=1e-3, device="cpu", labels=labels,
                  class_names=["a", "b", "c", "d"], progress=False)


@pytest.fixture
def benchmark_script():
    """Load ``benchmarks/<name>.py`` as a module, to call its ``main(argv)`` in this process. The
    scripts set torch's thread count for their measurements; it is restored after the test."""
    threads = torch.get_num_threads()

    def load(name: str):
        path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"benchmark_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    yield load
    torch.set_num_threads(threads)
