"""The GPU benchmark scripts, run at their CPU smoke sizes, so the one-call GPU check they are for
cannot first fail on a lent H200 (device time is scarce; these scripts are what a GPU session runs).

Their numbers at these sizes mean nothing; what is asserted is that every path runs end to end and
writes the results document that ``rapidinr figures`` and the closing notes read.
"""
from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_gpu_encode_cpu_smoke_measures_every_variant_and_the_projection(tmp_path, benchmark_script):
    out = tmp_path / "gpu_encode.json"
    benchmark_script("gpu_encode").main(["--cpu-smoke", "--variants", "fp32,tf32,bf16", "--out", str(out)])
    doc = json.loads(out.read_text())
    assert doc["hardware"] and doc["settings"]["variants"] == ["fp32", "tf32", "bf16"]
    throughput = doc["results"]["throughput"]
    assert set(throughput) == {"32x32 3x15", "48x48 3x16"}
    for label, rows in throughput.items():
        assert set(rows) == {"fp32", "tf32", "bf16"}, label
        for row in rows.values():
            assert row["image_steps_per_s"] > 0 and math.isfinite(row["psnr"]) and row["psnr"] > 5
        # tf32 changes nothing on the CPU; bf16 rounds but must stay close to float32's PSNR
        assert rows["tf32"]["psnr"] == pytest.approx(rows["fp32"]["psnr"], abs=1e-4)
        assert rows["bf16"]["psnr"] == pytest.approx(rows["fp32"]["psnr"], abs=0.5)
    projection = doc["results"]["to_target"]
    assert set(projection) == {"random", "learned"}
    for row in projection.values():
        assert row["images"] == 16 and 0 <= row["reached_train_target"] <= 16
        assert row["projected_50k_s"] == pytest.approx(50_000 * row["seconds"] / 16)


def test_gpu_encode_without_a_gpu_says_so_and_writes_nothing(tmp_path):
    out = tmp_path / "never.json"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_encode.py"), "--device", "cuda", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    if done.returncode == 0:
        pytest.skip("a CUDA GPU is present")
    assert done.returncode == 2 and "no CUDA GPU" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


def test_gpu_grid_tiny_runs_every_pipeline_it_can_here(tmp_path, benchmark_script):
    out = tmp_path / "pipelines.json"
    assert benchmark_script("gpu_grid").main(["--tiny", "--output", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    ran = {(r["data"], r["pipeline"]) for r in results["rows"]}
    expected = {"inr", "tensor", "jpeg"} | ({"dali"} if importlib.util.find_spec("nvidia.dali") else set())
    for data in ("photos@16x16", "photos@72x72"):
        assert {p for d, p in ran if d == data} >= expected, data
    for row in results["rows"]:
        assert row["images_per_s"] > 0 and 0 <= row["final_test_accuracy"] <= 1
    # nvJPEG decodes on a GPU only: listed as skipped with the reason, never silently missing
    assert {(s["pipeline"], s["reason"]) for s in results["skipped"]} == {("nvjpeg", "nvjpeg needs a CUDA GPU")}
