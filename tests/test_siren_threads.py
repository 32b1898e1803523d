"""The SIREN's CPU workspace is per thread: two fits in two threads never touch each other's buffers."""
from __future__ import annotations

import threading

import torch

from rapidinr.core import siren
from rapidinr.core.config import Arch


def _steps(params: torch.Tensor, arch: Arch, coords, target, steps: int, start: threading.Barrier | None):
    """Plain gradient steps through siren.loss_and_grad; returns the final weights (n, P)."""
    p = params.clone()
    if start is not None:
        start.wait()
    for _ in range(steps):
        _, grad = siren.loss_and_grad(p, arch, coords, target)
        p -= 1e-3 * grad
    return p


def test_two_fits_in_two_threads_match_the_same_fits_run_alone():
    arch = Arch.parse("2x16", 3)
    coords = siren.coordinate_grid(16, 16)  # (256, 2): both fits share the buffers' shape key
    g = torch.Generator().manual_seed(0)
    jobs = [(siren.init_params(arch, range(k * 4, k * 4 + 4)), torch.rand(4, 256, 3, generator=g) * 2 - 1)
            for k in range(2)]
    alone = [_steps(p, arch, coords, t, 60, None) for p, t in jobs]
    together: list = [None, None]
    start = threading.Barrier(2)

    def run(k):
        together[k] = _steps(jobs[k][0], arch, coords, jobs[k][1], 60, start)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(2):
        torch.testing.assert_close(together[k], alone[k], rtol=0, atol=0)
