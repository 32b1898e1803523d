"""Every GPU check of issue 14 in one script, under 8 minutes on a lent GPU.

The GPU paths were made right by construction on a machine without one; this is the run that
confirms them on a real device. Each check prints one line (ok / FAILED / skipped, and numbers)
and lands in the results JSON:

1. ``loader-syncs``: one epoch of the inr and tensor loaders under
   ``torch.cuda.set_sync_debug_mode("error")``: a per-batch host sync (INRSet index checks,
   augmentation boxes) raises. On the CPU the same batches run on the ``meta`` device, where
   any read of a value raises likewise.
2. ``epoch-timer``: a short ResNet-18 epoch timed by ``EpochTimer``: it must synchronize once per
   epoch (counted), and data + step time from CUDA events must add up to about the wall time.
3. ``precision``: a fit with ``precision="tf32"`` and one with fp32: the process's
   ``fp32_precision`` restored after each, the PSNR within 0.3 dB, the tf32 fit's speed.
4. ``chunking``: the chunk size taken from free device memory and an encode with it
   (images/s, PSNR), against the fixed 1 GB budget's chunk.
5. ``dali``: DALI's loader (``mixed`` decoding on a GPU) covers every image once per epoch.

    python benchmarks/gpu_check.py              # on a CUDA GPU: every check at its real size
    python benchmarks/gpu_check.py --smoke      # the CPU: tiny sizes, CUDA-only parts skipped

Writes benchmarks/results/gpu_check-<cuda|cpu-smoke>.json (or --out). Exit status 1 if any check failed.

Not here, because it does not fit the 8 minutes: the full-size Kodak rate-distortion run (issue 12;
all 24 photos, COIN's 50,000 steps, beside the published Kodak curves; ~2e16 FLOP of fitting, about
17 minutes at a sustained 20 TFLOP/s: an estimate, no GPU has run it), one command of its own:

    python benchmarks/rd_study.py --kodak-full 24 --full-steps 50000 --device cuda
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from rapidinr import encode
from rapidinr.core import siren
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.results import results_document, write_results
from rapidinr.encoding import runner
from rapidinr.encoding.fit import chunk_size_for
from rapidinr.sources.datasets import load_default, load_sample_crops
from rapidinr.training import loaders, timing
from rapidinr.training.augment import AugmentConfig
from rapidinr.training.loaders import InrLoader, TensorLoader
from rapidinr.training.loop import TrainConfig, TrainData, run_training

RESULTS = Path(__file__).resolve().parent / "results"


def sizes(smoke: bool) -> dict:
    if smoke:
        return {"images": 16, "steps": 20, "batch": 8, "crops": 8}
    return {"images": 4096, "steps": 500, "batch": 256, "crops": 4096}


def check_loader_syncs(device, size) -> dict:
    """One epoch of the inr and tensor loaders with host syncs made errors (meta device on the CPU)."""
    data = load_default("train").subset(0, size["images"])
    arch = Arch.parse("3x15", 1)
    inrs = encode(data.images, arch=arch, steps=5, device="cpu", labels=data.labels,
                  class_names=data.class_names, progress=False)
    target = device if device.type == "cuda" else torch.device("meta")
    inrs = inrs.to(target)
    aug = AugmentConfig((28, 28))
    batches = 0
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
    try:
        for x, _ in InrLoader(inrs, aug, batch_size=size["batch"]):
            batches += 1
        for x, _ in TensorLoader(data.images, data.labels, aug, target, batch_size=size["batch"]):
            batches += 1
    finally:
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode("default")
    return {"ok": True, "batches": batches, "device": str(target)}


def check_epoch_timer(device, size) -> dict:
    """A short training run: synchronizations counted per epoch, data + step against wall time."""
    data = load_default("train").subset(0, size["images"])
    test = load_default("test").subset(0, size["batch"])
    calls = []
    real = timing.synchronize

    def counting(dev):
        calls.append(dev)
        real(dev)

    timing.synchronize = counting
    try:
        cfg = TrainConfig(epochs=2, batch_size=size["batch"], warmup_batches=0)
        result = run_training("tensor", TrainData(data.labels, 10, 1, test.images, test.labels, data.images),
                              cfg, (28, 28), device, progress=False)
    finally:
        timing.synchronize = real
    epoch = result["epochs"][-1]
    split = (epoch["data_s"] + epoch["step_s"]) / epoch["wall_s"]
    return {"ok": len(calls) == 2 and 0.8 <= split <= 1.01, "synchronizations": len(calls), "epochs": 2,
            "data_s": epoch["data_s"], "step_s": epoch["step_s"], "wall_s": epoch["wall_s"],
            "split_over_wall": round(split, 3)}


def check_precision(device, size) -> dict:
    """tf32 against fp32 fits: the setting restored, PSNR close, time of each."""
    crops = load_sample_crops(size["crops"], (32, 32)).images
    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision
    out = {}
    for precision in ("fp32", "tf32"):
        start = time.perf_counter()
        inrs = encode(crops, arch="3x15", steps=size["steps"], device=device, progress=False, precision=precision)
        if device.type == "cuda":
            torch.cuda.synchronize()
        out[precision] = {"seconds": round(time.perf_counter() - start, 3), "psnr": float(inrs.psnr.mean())}
    restored = matmul.fp32_precision == before
    gap = out["tf32"]["psnr"] - out["fp32"]["psnr"]
    return {"ok": restored and abs(gap) < 0.3, "restored": restored, "psnr_gap_db": round(gap, 3),
            "first_layer_elementwise": siren.exact_first_layer(device), **out}


def check_chunking(device, size) -> dict:
    """The chunk from free device memory, and an encode with it."""
    arch = Arch.parse("3x15", 3)
    auto = runner.device_chunking(FitConfig(), arch, 32 * 32, device)
    fixed = chunk_size_for(arch, 32 * 32, FitConfig())
    crops = load_sample_crops(size["crops"], (32, 32)).images
    start = time.perf_counter()
    inrs = encode(crops, arch=arch, steps=size["steps"], device=device, progress=False)
    seconds = time.perf_counter() - start
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None
    return {"ok": bool(torch.isfinite(inrs.psnr).all()), "chunk_auto": auto.chunk_size, "chunk_fixed_1gb": fixed,
            "free_bytes": free, "images_per_s": round(len(crops) / seconds, 1), "psnr": float(inrs.psnr.mean())}


def check_dali(device, size) -> dict:
    if not loaders.dali_available():
        return {"ok": None, "skipped": "NVIDIA DALI not installed"}
    data = load_default("train").subset(0, size["images"])
    with tempfile.TemporaryDirectory() as folder:
        paths = loaders.write_jpegs(data.images, Path(folder), quality=95)
        dali = loaders.DaliLoader(paths, torch.arange(len(paths)), AugmentConfig((28, 28)), device, channels=1,
                                  workers=2, batch_size=size["batch"])
        epochs = [sorted(int(v) for _, y in dali for v in y.cpu()) for _ in range(2)]
    return {"ok": all(e == list(range(len(paths))) for e in epochs), "images": len(paths), "epochs": 2}


CHECKS = {"loader-syncs": check_loader_syncs, "epoch-timer": check_epoch_timer, "precision": check_precision,
          "chunking": check_chunking, "dali": check_dali}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (CUDA-only parts skipped)")
    p.add_argument("--only", help="comma-separated checks: " + ", ".join(CHECKS))
    p.add_argument("--out", help="results JSON (default benchmarks/results/gpu_check-<cuda|cpu-smoke>.json)")
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.smoke
    if not cuda and not args.smoke:
        raise SystemExit("gpu_check: no CUDA device; run with --smoke for the CPU smoke test")
    device = torch.device("cuda" if cuda else "cpu")
    if not cuda:
        torch.set_num_threads(1)
    size = sizes(args.smoke)
    results, failed = {}, []
    names = args.only.split(",") if args.only else list(CHECKS)
    for name in names:
        start = time.perf_counter()
        try:
            row = CHECKS[name](device, size)
        except Exception as err:  # noqa: BLE001  (a check that crashes fails; the others still run)
            row = {"ok": False, "error": f"{type(err).__name__}: {err}"}
        row["seconds"] = round(time.perf_counter() - start, 2)
        results[name] = row
        state = "skipped" if row["ok"] is None else "ok" if row["ok"] else "FAILED"
        if row["ok"] is False:
            failed.append(name)
        detail = ", ".join(f"{k}={v}" for k, v in row.items() if k not in ("ok",))
        print(f"  {name:<14}{state:<8}{detail}", flush=True)
    out = args.out or str(RESULTS / f"gpu_check-{'cuda' if cuda else 'cpu-smoke'}.json")
    document = results_document("gpu_check", "issue 14's GPU checks: host syncs, epoch timer, precision, "
                                "chunking, DALI", {"device": str(device), **size}, results)
    print(f"wrote {write_results(out, document)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
