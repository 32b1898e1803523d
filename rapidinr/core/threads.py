"""How many CPU threads the encoder uses on a machine other processes are also using.

On a busy machine (a class's JupyterLab server, several kernels or jobs on few cores) torch's
default, one OpenMP thread per core with spinning waits, collapses: the encoder's threads spin at
every parallel region waiting for a sibling the scheduler has parked behind another process.
Measured with benchmarks/contention.py on this project's 2-core machine, other load ~2 cores:
27 s alone and 121-150 s beside 2-4 busy processes with torch's default two threads, against
1.5 / 2.4 / 4.5 s with two threads waiting passively and 1.9 / 6.9 s with one thread.

Two lines of defence, in order:

1. ``import rapidinr`` makes OpenMP wait passively (:mod:`rapidinr.core.openmp`) when it comes
   before torch. Then torch's own thread count stands: two passive threads beat one, alone and
   under load.
2. When torch was loaded first with spinning waits, the encoder takes ``min(torch's count, free
   cores)`` threads, where free cores are the cores this process may run on minus the CPU time
   other processes used over the last interval (``/proc/stat`` less this process's own CPU time),
   and looks again every few seconds while it fits.

It never raises the count above what torch is set to: ``torch.set_num_threads(1)`` or
``OMP_NUM_THREADS=1`` stay as they are. ``RAPIDINR_THREADS=N`` fixes the count (0 or ``auto``:
this policy); where ``/proc/stat`` is missing, the 1-minute load average stands in.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from rapidinr.core.errors import UserError
from rapidinr.core.openmp import passive_waiting

ENV = "RAPIDINR_THREADS"
REFRESH_SECONDS = 2.0  # how often a running encode looks at the load again
FIRST_WINDOW_SECONDS = 0.2  # the first look: other processes' CPU time over this long, before any work


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, which containers and taskset narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def machine_cpu_seconds() -> tuple[float, int] | None:
    """(busy CPU seconds of the whole machine since boot, cores counted), from ``/proc/stat``;
    None where there is none (not Linux)."""
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    fields = lines[0].split()
    if fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    busy = sum(ticks[:8]) - idle  # user nice system idle iowait irq softirq steal (guest is inside user)
    cores = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return busy / os.sysconf("SC_CLK_TCK"), max(1, cores)


def own_cpu_seconds() -> float:
    """CPU time of this process, every thread, user + system."""
    return time.process_time()


def threads_for(free_cores: float, ceiling: int) -> int:
    """Threads to run given ``free_cores`` (fractional): round half up, at least 1, at most ``ceiling``.

    Half a free core rounds up: one more thread that is runnable half the time still gains more
    than it costs; a third of a core does not (it would wait at every parallel region)."""
    return max(1, min(ceiling, int(free_cores + 0.5)))


def requested_threads() -> int | None:
    """``RAPIDINR_THREADS`` as a count, None for auto (unset, empty, 0 or ``auto``)."""
    text = os.environ.get(ENV, "").strip().lower()
    if text in ("", "0", "auto"):
        return None
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 1:
        raise UserError(f"{ENV}: expected a thread count >= 1 or auto, got {os.environ[ENV]!r}")
    return count


@dataclass(frozen=True)
class _Sample:
    wall: float  # time.monotonic()
    machine_busy: float | None  # busy CPU seconds of the machine (None: no /proc/stat)
    machine_cores: int
    own: float  # this process's CPU seconds


@dataclass
class ThreadPolicy:
    """Sets torch's intra-op threads from the free cores; :meth:`refresh` looks again.

    ``ceiling``: the most threads it will set (torch's count when the policy starts).
    ``counts``: every count it set, in order (what a benchmark reports)."""

    ceiling: int
    fixed: int | None = None
    adaptive: bool = True  # False: keep the ceiling (OpenMP waits passively; see the module doc)
    counts: list[int] = field(default_factory=list)
    _last: _Sample | None = None  # the last look at the machine

    def start(self) -> int:
        """The first count: from a short look at the machine before any work of ours."""
        if self.fixed is not None or self.ceiling == 1 or not self.adaptive:  # nothing to choose: no look
            return self._set(self.fixed or self.ceiling)
        self._last = self._sample()
        time.sleep(FIRST_WINDOW_SECONDS)
        return self._set(self._decide())

    def refresh(self) -> int:
        """Look again when ``REFRESH_SECONDS`` have passed since the last look; returns the count."""
        if self.fixed is not None or self._last is None or time.monotonic() - self._last.wall < REFRESH_SECONDS:
            return torch.get_num_threads()
        return self._set(self._decide())

    def free_cores(self) -> float:
        """Cores left free by other processes since the last look (this process's use not counted)."""
        now = self._sample()
        last, self._last = self._last, now
        cores = usable_cores()
        if now.machine_busy is None or last is None:  # no /proc/stat: the load average (counts us too)
            return cores - os.getloadavg()[0]
        wall = max(now.wall - last.wall, 1e-6)
        others = max(0.0, (now.machine_busy - last.machine_busy) - (now.own - last.own)) / wall  # busy cores
        # other processes spread over the whole machine; count the share that lands on our cores
        return cores - others * min(1.0, cores / now.machine_cores)

    def _decide(self) -> int:
        return threads_for(self.free_cores(), self.ceiling)

    @staticmethod
    def _sample() -> _Sample:
        machine = machine_cpu_seconds()
        busy, machine_cores = machine if machine is not None else (None, 1)
        return _Sample(time.monotonic(), busy, machine_cores, own_cpu_seconds())

    def _set(self, count: int) -> int:
        if count != torch.get_num_threads():
            torch.set_num_threads(count)
        self.counts.append(count)
        return count


@contextmanager
def encoder_threads():
    """Run the enclosed work under a :class:`ThreadPolicy`; torch's thread count is restored after.

    Yields the policy: call ``policy.refresh()`` now and then (the encoder does, between checks)."""
    before = torch.get_num_threads()
    fixed = requested_threads()
    policy = ThreadPolicy(ceiling=fixed if fixed is not None else before, fixed=fixed,
                          adaptive=not passive_waiting())
    try:
        policy.start()
        yield policy
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
