"""CPU seconds of work: a timed call, and the core-seconds of this process and its children.

On a machine shared with other jobs, CPU seconds are the steadier measure of the work than wall
time. Core-seconds count the process, its threads (DALI) and its worker processes (DataLoader),
read from ``/proc`` so live persistent workers are counted too.
"""
from __future__ import annotations

import os
import resource
import time
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def timed(fn):
    """Run ``fn()`` on the CPU; returns (its value, wall seconds, CPU seconds of this process).
    On a machine shared with other jobs, CPU seconds are the steadier measure of the work."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            out += [int(c) for c in text]
    except OSError:
        pass
    return out


def cpu_core_seconds() -> float:
    """User + system CPU seconds of this process, its live descendants, and reaped children."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = usage.ru_utime + usage.ru_stime + reaped.ru_utime + reaped.ru_stime
    if not Path("/proc/self/stat").exists():
        return total
    stack, seen = _children(os.getpid()), set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += _proc_cpu(pid)
        stack += _children(pid)
    return total
