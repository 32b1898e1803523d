"""The epoch timer: on a GPU, CUDA events and one synchronization per epoch (stood in for on the CPU)."""
from __future__ import annotations

from typing import ClassVar

import torch

from rapidinr.training import timing


class FakeEvent:
    """A CUDA event on a fake clock: record() reads the clock, elapsed_time() gives milliseconds."""

    clock: ClassVar[list[float]] = [0.0]

    def record(self):
        self.at = FakeEvent.clock[0]

    def elapsed_time(self, other) -> float:
        return (other.at - self.at) * 1000


def test_gpu_epoch_uses_events_and_synchronizes_once(monkeypatch):
    syncs = []
    monkeypatch.setattr(timing, "new_event", FakeEvent)
    monkeypatch.setattr(timing, "synchronize", lambda device: syncs.append(device))
    clock = FakeEvent.clock
    clock[0] = 10.0
    with timing.EpochTimer(torch.device("cuda")) as timer:
        for _ in range(5):
            clock[0] += 0.25  # the stream idles while the next batch comes: data
            timer.data_done()
            clock[0] += 1.0  # the step's kernels
            timer.step_done(8)
        clock[0] += 0.5  # the loader's end of epoch
    assert len(syncs) == 1  # per epoch, not per step
    result = timer.result()
    assert result["data_s"] == 1.25 and result["step_s"] == 5.0 and result["gpu_step_s"] == 5.0
    assert (result["images"], result["batches"]) == (40, 5)


def test_cpu_epoch_splits_data_and_step_and_never_syncs(monkeypatch):
    syncs = []
    monkeypatch.setattr(timing, "synchronize", lambda device: syncs.append(device) if device.type == "cuda" else None)
    now = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: now[0])
    with timing.EpochTimer(torch.device("cpu")) as timer:
        now[0] += 0.5
        timer.data_done()
        now[0] += 2.0
        timer.step_done(4)
    result = timer.result()
    assert (result["data_s"], result["step_s"], result["wall_s"], result["gpu_step_s"]) == (0.5, 2.0, 2.5, None)
    assert syncs == []
