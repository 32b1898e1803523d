"""The encoder on a busy machine (issue 14): the same small encode alone and beside N busy processes.

A class's JupyterLab server runs many kernels on few cores. Each row of the table is one small
encode (``rapidinr.encode`` of the embedded Fashion-MNIST, in a fresh Python process so thread
settings start clean) under one thread setting:

- ``torch-default``: torch's own count (one thread per core), spinning OpenMP waits: the old default;
- ``passive``: the same thread count with ``OMP_WAIT_POLICY=PASSIVE`` (workers sleep, not spin);
- ``one-thread``: ``OMP_NUM_THREADS=1``;
- ``policy``: nothing set, ``import rapidinr`` first (as the ``rapidinr`` command does): passive
  OpenMP waiting with torch's thread count (``rapidinr.core.openmp``, ``rapidinr.core.threads``);
- ``policy-torch-first``: nothing set, torch imported before rapidinr (as a notebook might): the
  wait policy is torch's default, so the encoder takes threads from the cores other processes
  leave free, looked at again every few seconds;

each alone and beside N = cores and 2× cores busy processes (``python -c 'while True: pass'``)
that this script starts before and stops (by process id) after each encode.

The fair share: a one-thread job alone takes T1 (the ``one-thread`` row, alone). Beside N busy
processes and B cores of other load on C cores, it gets C/(N+1+B) of a core at best, so the fair
time is T1 × max(1, (N+1+B)/C) / max(1, (1+B0)/C), B0 the other load during the alone run. The
table prints each encode's time over that fair time: 1.0 is a perfect share, the target is ≤ 1.5.
B is measured from /proc/stat over one second before each encode (the busy processes not yet
started), so a machine shared with other people's jobs is accounted for, if roughly.

    python benchmarks/contention.py                 # 16 images, 100 steps, N = 0, C, 2C
    python benchmarks/contention.py --quick         # a smoke test (seconds)

Writes benchmarks/results/contention-cpu.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rapidinr.core.results import results_document, write_results
from rapidinr.core.threads import machine_cpu_seconds, usable_cores

RESULTS = Path(__file__).parent / "results"
VARIANTS = ("torch-default", "passive", "one-thread", "policy", "policy-torch-first")

WORKER = r"""
import json, sys, time
if sys.argv[4] == "torch-first":
    import torch  # as a notebook that imports torch before rapidinr: OpenMP's wait policy is set already
from rapidinr.core import threads  # imports rapidinr, which asks for passive waiting if torch is not loaded
import torch
counts = []
real_set = threads.ThreadPolicy._set
def record(self, count):
    counts.append(count)
    return real_set(self, count)
threads.ThreadPolicy._set = record
from rapidinr import encode
from rapidinr.sources.datasets import load_default
images = load_default("train").images[: int(sys.argv[1])]
start = time.perf_counter()
encode(images, arch=sys.argv[3], steps=int(sys.argv[2]), device="cpu", progress=False)
print(json.dumps({"seconds": time.perf_counter() - start, "threads": counts,
                  "torch_threads": torch.get_num_threads()}))
"""


def variant_env(variant: str, cores: int) -> dict:
    """The environment of one encode: the variant's thread settings, nothing else inherited that sets threads."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "RAPIDINR_THREADS")}
    if variant == "torch-default":
        env["RAPIDINR_THREADS"] = str(cores)
    elif variant == "passive":
        env.update(RAPIDINR_THREADS=str(cores), OMP_WAIT_POLICY="PASSIVE")
    elif variant == "one-thread":
        env["OMP_NUM_THREADS"] = "1"
    elif variant not in ("policy", "policy-torch-first"):
        raise ValueError(variant)
    return env


def other_load(seconds: float = 1.0) -> float:
    """Cores busy with other processes over ``seconds`` (this process sleeps meanwhile)."""
    before = machine_cpu_seconds()
    time.sleep(seconds)
    after = machine_cpu_seconds()
    if before is None or after is None:
        return os.getloadavg()[0]
    return (after[0] - before[0]) / seconds * min(1.0, usable_cores() / after[1])


def start_busy(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def stop_busy(procs: list[subprocess.Popen]) -> None:
    for proc in procs:  # only the processes this script started, by their id
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=10)


def run_encode(variant: str, busy: int, args, cores: int) -> dict:
    load = other_load(args.load_window)
    procs = start_busy(busy)
    try:
        time.sleep(0.5 if busy else 0)  # let the busy processes get going
        order = "rapidinr-first" if variant == "policy" else "torch-first"
        out = subprocess.run([sys.executable, "-c", WORKER, str(args.images), str(args.steps), args.arch, order],
                             env=variant_env(variant, cores), capture_output=True, text=True, check=False,
                             timeout=args.timeout)
    finally:
        stop_busy(procs)
    if out.returncode != 0:
        raise SystemExit(f"contention: the {variant} encode failed:\n{out.stderr[-2000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    return {"variant": variant, "busy": busy, "other_load": round(load, 2), "seconds": round(row["seconds"], 3),
            "threads": row["threads"]}


def fair_ratios(rows: list[dict], cores: int) -> None:
    """Add ``fair_seconds`` and ``vs_fair`` to every row (module docstring), from the one-thread alone run."""
    alone = next(r for r in rows if r["variant"] == "one-thread" and r["busy"] == 0)
    base = alone["seconds"] / max(1.0, (1 + alone["other_load"]) / cores)  # T1 on an idle machine, estimated
    for row in rows:
        row["fair_seconds"] = round(base * max(1.0, (row["busy"] + 1 + row["other_load"]) / cores), 3)
        row["vs_fair"] = round(row["seconds"] / row["fair_seconds"], 2)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=16)  # issue 14's measurement: 16 images, 100 steps
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--arch", default="3x15")
    p.add_argument("--busy", default=None, help="comma-separated busy-process counts (default 0,C,2C)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--load-window", type=float, default=1.0, help="seconds to measure other load before each run")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--quick", action="store_true", help="4 images, 10 steps, N = 0 and C: a smoke test")
    p.add_argument("--out", default=str(RESULTS / "contention-cpu.json"))
    args = p.parse_args(argv)
    cores = usable_cores()
    if args.quick:
        args.images, args.steps, args.load_window = 4, 10, 0.2
    busy_counts = ([int(b) for b in args.busy.split(",")] if args.busy
                   else [0, cores] if args.quick else [0, cores, 2 * cores])
    if 0 not in busy_counts:
        busy_counts = [0, *busy_counts]
    variants = args.variants.split(",")
    if "one-thread" not in variants:
        variants.append("one-thread")  # the fair share is measured from it
    rows = []
    # side by side: every variant at one busy count before the next count
    for busy in busy_counts:
        for variant in variants:
            rows.append(run_encode(variant, busy, args, cores))
            r = rows[-1]
            print(f"  {variant:<14} N={busy:<3} other load {r['other_load']:.2f} cores: {r['seconds']:.2f} s "
                  f"(threads {r['threads']})", flush=True)
    fair_ratios(rows, cores)
    default_alone = next((r["seconds"] for r in rows if r["variant"] == "torch-default" and r["busy"] == 0), None)
    print(f"contention: {args.images} images x {args.steps} steps, arch {args.arch}, {cores} cores")
    print(f"  {'variant':<14}{'N':>4}{'other':>7}{'seconds':>9}{'fair s':>8}{'vs fair':>8}{'vs default alone':>18}")
    for r in rows:
        quiet = f"{r['seconds'] / default_alone:.2f}" if default_alone and r["busy"] == 0 else ""
        print(f"  {r['variant']:<14}{r['busy']:>4}{r['other_load']:>7.2f}{r['seconds']:>9.2f}{r['fair_seconds']:>8.2f}"
              f"{r['vs_fair']:>8.2f}{quiet:>18}")
    settings = {"images": args.images, "steps": args.steps, "arch": args.arch, "cores": cores,
                "busy": busy_counts, "variants": variants}
    document = results_document("contention", "one small encode alone and beside N busy processes, per thread "
                                "setting; seconds over the fair share (module docstring)", settings, rows)
    print(f"wrote {write_results(args.out, document)}")
    return document


if __name__ == "__main__":
    main()
