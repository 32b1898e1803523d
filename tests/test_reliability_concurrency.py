"""Two processes read a .rinr file in a loop while a third keeps rewriting it with INRSet.save.

Every load must succeed and give one of the two complete sets the writer alternates between:
the writer goes through a temporary file and an atomic rename, so a reader never sees half a file.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

SETS = textwrap.dedent("""
    import torch
    from rapidinr import INRSet
    from rapidinr.core.config import Arch

    def make(variant):
        # two sets of different sizes, so a mix of the two or a cut-off file cannot pass for either
        n = 40 if variant == "A" else 300
        arch = Arch(2, 16, 3)
        params = torch.full((n, arch.n_params), 0.25 if variant == "A" else -0.5)
        return INRSet(params, arch, 8, 8, torch.zeros(n, dtype=torch.long), ["x"], torch.zeros(n),
                      {"variant": variant})
""")

WRITER = SETS + textwrap.dedent("""
    import sys, time
    import os
    path, stop = sys.argv[1], sys.argv[2]
    sets = [make("A"), make("B")]
    writes, end = 0, time.monotonic() + 300  # until the test says stop (a safety limit besides)
    while not os.path.exists(stop) and time.monotonic() < end:
        sets[writes % 2].save(path)
        writes += 1
        if writes == 1:
            open(stop + ".ready", "w").close()
    print(writes)
""")

READER = textwrap.dedent("""
    import json, sys, time
    import torch
    from rapidinr import load, UserError
    path, seconds = sys.argv[1], float(sys.argv[2])
    seen, errors = {"A": 0, "B": 0}, []
    end = time.monotonic() + seconds  # counted from the first load, after the slow start-up
    while time.monotonic() < end:
        try:
            inrs = load(path)
        except Exception as err:  # any failure at all is what this test looks for
            errors.append(f"{type(err).__name__}: {err}")
            continue
        variant = inrs.meta.get("variant")
        n, value = (40, 0.25) if variant == "A" else (300, -0.5)
        if len(inrs) != n or not bool((inrs.dense_params() == value).all()):
            errors.append(f"inconsistent set: variant {variant} with {len(inrs)} images")
            continue
        seen[variant] += 1
    print(json.dumps({"seen": seen, "errors": errors[:5], "n_errors": len(errors)}))
""")


def test_readers_never_see_a_half_written_file(tmp_path):
    path = tmp_path / "shared.rinr"
    stop = tmp_path / "stop"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(stop)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not Path(str(stop) + ".ready").exists():  # the first complete file is there
        assert writer.poll() is None, writer.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(path), "2"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for reader in readers:
        out, err = reader.communicate(timeout=180)
        assert reader.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    stop.touch()
    out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    writes = int(out.strip())
    print(f"\n{writes} writes; readers: {results}")
    for result in results:
        assert result["n_errors"] == 0, result["errors"]
        assert sum(result["seen"].values()) >= 5
    assert writes >= 10
    assert sum(r["seen"]["A"] for r in results) and sum(r["seen"]["B"] for r in results)  # both versions read
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.rinr", "stop", "stop.ready"]  # no temporaries
