"""The encoder's thread policy (rapidinr.core.threads) and OpenMP's wait policy (rapidinr.core.openmp)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from rapidinr.core import threads
from rapidinr.core.errors import UserError


def test_threads_for_rounds_free_cores_and_stays_in_bounds():
    assert [threads.threads_for(f, 2) for f in (-3.0, 0.0, 0.4, 0.5, 1.4, 1.6, 8.0)] == [1, 1, 1, 1, 1, 2, 2]


class FakeMachine:
    """/proc/stat and this process's CPU time, advanced by hand: ``others`` cores busy per second."""

    def __init__(self, monkeypatch, cores: int = 2):
        self.wall = self.busy = self.own = 0.0
        self.cores = cores
        monkeypatch.setattr(threads, "machine_cpu_seconds", lambda: (self.busy, self.cores))
        monkeypatch.setattr(threads, "own_cpu_seconds", lambda: self.own)
        monkeypatch.setattr(threads.time, "monotonic", lambda: self.wall)
        monkeypatch.setattr(threads.time, "sleep", lambda s: self.advance(s))
        monkeypatch.setattr(threads, "usable_cores", lambda: cores)
        self.others, self.mine = 0.0, 0.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.busy += (self.others + self.mine) * seconds
        self.own += self.mine * seconds


def test_policy_takes_the_free_cores_and_looks_again(monkeypatch):
    machine = FakeMachine(monkeypatch)
    policy = threads.ThreadPolicy(ceiling=2)
    machine.others = 0.1
    assert policy.start() == 2  # a quiet machine: torch's count
    machine.others, machine.mine = 2.0, 2.0  # two busy processes arrive; our own use is not counted
    machine.advance(1.0)
    assert policy.refresh() == 2  # too soon to look again
    machine.advance(threads.REFRESH_SECONDS)
    assert policy.refresh() == 1
    machine.others, machine.mine = 0.0, 1.0  # they leave
    machine.advance(threads.REFRESH_SECONDS)
    assert policy.refresh() == 2
    assert policy.counts == [2, 1, 2]


def test_policy_never_raises_torchs_count_and_passive_waiting_keeps_it(monkeypatch):
    machine = FakeMachine(monkeypatch, cores=4)
    assert threads.ThreadPolicy(ceiling=1).start() == 1
    assert threads.ThreadPolicy(ceiling=3).start() == 3  # quiet: 4 free, at most torch's 3
    machine.others = 4.0
    assert threads.ThreadPolicy(ceiling=3, adaptive=False).start() == 3


def test_encoder_threads_restores_torchs_count(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv(threads.ENV, "2")
    with threads.encoder_threads() as policy:
        assert torch.get_num_threads() == 2 and policy.counts == [2]
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("value", ["-1", "two", "1.5"])
def test_bad_thread_count_is_a_user_error(monkeypatch, value):
    monkeypatch.setenv(threads.ENV, value)
    with pytest.raises(UserError, match="RAPIDINR_THREADS"):
        threads.requested_threads()


def _wait_policy(code: str, **env) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | env
    run = subprocess.run([sys.executable, "-c", code + "; import os; print(os.environ.get('OMP_WAIT_POLICY'))"],
                         env=clean, capture_output=True, text=True, check=True, timeout=120)
    return run.stdout.split()[-1]


def test_import_rapidinr_asks_for_passive_waiting_only_before_torch_and_unset():
    assert _wait_policy("import rapidinr") == "PASSIVE"
    assert _wait_policy("import torch, rapidinr") == "None"  # too late: torch read it already
    assert _wait_policy("import rapidinr", OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"  # the user's choice stands
