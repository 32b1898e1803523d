"""Epoch timing for training: data time, step time, wall time and CPU core-seconds per epoch.

Every pipeline is timed the same way (see :class:`EpochTimer`): the wait for the next batch is
*data time*, the forward/backward/update is *step time*, both measured between device
synchronizations (CUDA events on a GPU, ``perf_counter`` on the CPU); wall time per epoch is the
whole loop.
"""
from __future__ import annotations

import time

import torch

from rapidinr.core.cputime import cpu_core_seconds


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Clock:
    """Elapsed seconds between marks: each mark synchronizes the device, then reads
    ``perf_counter`` (one sync per mark, so that the split between data and step is honest)."""

    def __init__(self, device: torch.device):
        self.device = torch.device(device)

    def now(self) -> float:
        synchronize(self.device)
        return time.perf_counter()


class CudaEventPair:
    """A CUDA-event stopwatch (GPU time of the work queued between start() and stop())."""

    def __init__(self):
        self.begin = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def start(self):
        self.begin.record()

    def stop(self) -> float:
        self.end.record()
        self.end.synchronize()
        return self.begin.elapsed_time(self.end) / 1000


class EpochTimer:
    """Accumulates data time and step time over one epoch, plus its wall time and CPU seconds."""

    def __init__(self, device: torch.device):
        self.clock = Clock(device)
        self.device = torch.device(device)
        self.data = self.step = 0.0
        self.images = self.batches = 0
        self.gpu_step = 0.0

    def __enter__(self):
        self.cpu0 = cpu_core_seconds()
        self.t0 = self.mark = self.clock.now()
        return self

    def data_done(self) -> None:
        t = self.clock.now()
        self.data += t - self.mark
        self.mark = t
        if self.device.type == "cuda":
            self._pending = CudaEventPair()
            self._pending.start()

    def step_done(self, images: int) -> None:
        if self.device.type == "cuda":
            self.gpu_step += self._pending.stop()  # CUDA-event time of the step's kernels
        t = self.clock.now()
        self.step += t - self.mark
        self.mark = t
        self.images += images
        self.batches += 1

    def __exit__(self, *exc):
        self.wall = self.clock.now() - self.t0
        self.cpu = cpu_core_seconds() - self.cpu0
        return False

    def result(self) -> dict:
        return {"wall_s": round(self.wall, 4), "data_s": round(self.data, 4), "step_s": round(self.step, 4),
                "images": self.images, "batches": self.batches,
                "images_per_s": round(self.images / self.wall, 2) if self.wall > 0 else None,
                "cpu_core_s": round(self.cpu, 3),
                "gpu_step_s": round(self.gpu_step, 4) if self.device.type == "cuda" else None}
