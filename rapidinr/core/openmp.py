"""OpenMP's wait policy, chosen before torch loads its OpenMP runtime (which reads it only then).

torch's CPU threads are OpenMP workers that, by default, spin for a while at the end of every
parallel region waiting for the next one. On a machine whose cores are busy with other
processes a spinning worker burns the time slice a parked sibling needs, and a small encode ran
18-40x slower with torch's default two threads than with passive waiting (benchmarks/contention.py,
this project's 2-core machine, other load ~2 cores). Passive waiting (workers sleep at once)
kept two threads faster than one, alone and beside busy processes.

So ``import rapidinr`` sets ``OMP_WAIT_POLICY=PASSIVE`` when torch is not loaded yet and the
variable is unset; a value the user set stands. This module imports nothing heavy: it must run
before torch does. :mod:`rapidinr.core.threads` asks :func:`passive_waiting` whether it worked.
"""
from __future__ import annotations

import os
import sys

VARIABLE = "OMP_WAIT_POLICY"
_passive: bool | None = None  # decided once, at the first call, before or after torch loaded


def prefer_passive_waiting() -> bool:
    """Ask for passive OpenMP waiting if torch's runtime is not loaded yet; returns whether the
    runtime waits passively (decided at the first call: later calls return the same answer)."""
    global _passive
    if _passive is None:
        if "torch" not in sys.modules:
            os.environ.setdefault(VARIABLE, "PASSIVE")
            _passive = os.environ[VARIABLE].strip().upper() == "PASSIVE"
        else:  # torch came first: its runtime read the variable when it loaded, as it was then
            _passive = os.environ.get(VARIABLE, "").strip().upper() == "PASSIVE"
    return _passive


def passive_waiting() -> bool:
    """Whether torch's OpenMP workers sleep (not spin) between parallel regions, as far as we can tell."""
    return prefer_passive_waiting()
