"""Epoch timing for training: data time, step time, wall time and CPU core-seconds per epoch.

Every pipeline is timed the same way (see :class:`EpochTimer`): the wait for the next batch is
*data time*, the forward/backward/update is *step time*; wall time per epoch is the whole loop.

On a GPU the marks are CUDA events recorded on the stream, never a synchronization: a host sync
per mark (three a step) would stall the queue the timing is meant to observe. The events are read
after one synchronization at the end of the epoch (airbench's way): the span between the event
after a step and the event after the next batch arrived is data time (the stream idles while
the host waits for data), the span from there to the event after the step is step time. On the
CPU the marks are ``perf_counter`` readings, which need no synchronization.
"""
from __future__ import annotations

import time

import torch

from rapidinr.core.cputime import cpu_core_seconds


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def new_event():
    """A timing CUDA event (a function, so tests can stand in for CUDA on the CPU)."""
    return torch.cuda.Event(enable_timing=True)


class EpochTimer:
    """Accumulates data time and step time over one epoch, plus its wall time and CPU seconds.

    ``with EpochTimer(device) as t: ... t.data_done() ... t.step_done(n)``; :meth:`result` after."""

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.marks: list[tuple[str, object]] = []  # ("start" | "data" | "step" | "end", event or seconds)
        self.data = self.step = 0.0
        self.images = self.batches = 0

    def _mark(self, kind: str) -> None:
        if self.cuda:
            event = new_event()
            event.record()
            self.marks.append((kind, event))
        else:
            self.marks.append((kind, time.perf_counter()))

    def __enter__(self):
        self.cpu0 = cpu_core_seconds()
        self.t0 = time.perf_counter()
        self._mark("start")
        return self

    def data_done(self) -> None:
        self._mark("data")

    def step_done(self, images: int) -> None:
        self._mark("step")
        self.images += images
        self.batches += 1

    def __exit__(self, *exc):
        self._mark("end")
        synchronize(self.device)  # the epoch's one synchronization: every event has completed
        self.wall = time.perf_counter() - self.t0
        self.cpu = cpu_core_seconds() - self.cpu0
        for (_, first), (kind, second) in zip(self.marks, self.marks[1:]):
            seconds = first.elapsed_time(second) / 1000 if self.cuda else second - first
            if kind == "data":
                self.data += seconds
            elif kind == "step":
                self.step += seconds
        return False

    def result(self) -> dict:
        return {"wall_s": round(self.wall, 4), "data_s": round(self.data, 4), "step_s": round(self.step, 4),
                "images": self.images, "batches": self.batches,
                "images_per_s": round(self.images / self.wall, 2) if self.wall > 0 else None,
                "cpu_core_s": round(self.cpu, 3),
                "gpu_step_s": round(self.step, 4) if self.cuda else None}  # step time from events on a GPU
