"""Training time on this CPU: the inr pipeline against tensor (the ideal) and jpeg, side by side.

The embedded default (Fashion-MNIST subset, 28×28 gray) at its own size and decoded/resized to
64×64; one epoch of ResNet-18 per pipeline with the same model, batch and augmentation, after an
untimed, undone warm-up. Also times each loader alone (iterating one epoch of batches without
the model), which isolates what the pipeline itself costs. Prints ratios measured in one run and
writes ``benchmarks/results/pipelines-cpu.json``.

    python benchmarks/pipelines.py                 # defaults: 512 images at 28x28, 256 at 64x64
    python benchmarks/pipelines.py --images 128 --images-64 64 --encode-steps 50   # quicker
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from rapidinr import encode
from rapidinr.core.cputime import cpu_core_seconds
from rapidinr.core.distributed import from_env
from rapidinr.core.results import results_document, write_results
from rapidinr.sources.datasets import load_default
from rapidinr.training.augment import AugmentConfig
from rapidinr.training.loop import TrainConfig, TrainData, build_loader, run_training
from rapidinr.training.timing import synchronize

RESULTS = Path(__file__).resolve().parent / "results" / "pipelines-cpu.json"
PIPELINES = [("inr", 0), ("tensor", 0), ("jpeg", 1)]


def loader_only(pipeline, workers, data, size, cfg, workdir, device) -> dict:
    """Seconds and CPU core-seconds to iterate one epoch of batches with no model (after one warm-up epoch)."""
    loader = build_loader(pipeline, data, AugmentConfig(size), device, workers, cfg, from_env(), workdir)
    loader.set_epoch(99)
    for _ in loader:  # warm-up epoch: workers start, first-touch allocations
        pass
    loader.set_epoch(0)
    synchronize(torch.device(device))  # once before and once after the epoch: not per batch
    cpu0, t0 = cpu_core_seconds(), time.perf_counter()
    count = sum(int(y.shape[0]) for _, y in loader)
    synchronize(torch.device(device))
    seconds = time.perf_counter() - t0
    del loader
    return {"seconds": round(seconds, 4), "images": count, "images_per_s": round(count / seconds, 1),
            "cpu_core_s": round(cpu_core_seconds() - cpu0, 3)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=512, help="training images at 28x28 (default 512)")
    p.add_argument("--images-64", type=int, default=256, help="training images at 64x64 (default 256)")
    p.add_argument("--encode-steps", type=int, default=300, help="fit steps for the INR (default 300)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch threads in the main process (default 1: "
                   "on a shared 2-core machine more threads spin-wait and slow every pipeline)")
    p.add_argument("--output", default=str(RESULTS))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    train_all, test = load_default("train"), load_default("test").subset(0, 200)
    n_max = max(args.images, args.images_64)
    subset = train_all.subset(0, n_max)
    start = time.perf_counter()
    inrs = encode(subset.images, "3x15", steps=args.encode_steps, labels=subset.labels,
                  class_names=subset.class_names, progress=False)
    encode_s = time.perf_counter() - start
    psnr = float(inrs.psnr.mean())
    print(f"encoded {n_max} images (3x15, {args.encode_steps} steps) in {encode_s:.1f} s, PSNR {psnr:.2f} dB")
    cfg = TrainConfig(epochs=1, batch_size=args.batch_size, warmup_batches=2)
    out = {"encode": {"images": n_max, "steps": args.encode_steps, "seconds": round(encode_s, 2), "psnr": psnr},
           "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for size, n in (((28, 28), args.images), ((64, 64), args.images_64)):
            from rapidinr.codec.inrset import INRSet

            part = INRSet(inrs.dense_params()[:n], inrs.arch, 28, 28, inrs.labels[:n], inrs.class_names, inrs.psnr[:n])
            data = TrainData(subset.labels[:n], 10, 1, test.images, test.labels, subset.images[:n], part, "default")
            workdir = Path(tmp) / f"{size[0]}"
            key = f"{size[0]}x{size[1]}"
            rows = {}
            for pipeline, workers in PIPELINES:
                name = pipeline + (f"-{workers}w" if workers else "")
                alone = loader_only(pipeline, workers, data, size, cfg, workdir, device)
                result = run_training(pipeline, data, cfg, size, device, workers, progress=False, workdir=workdir)
                epoch = result["epochs"][0]
                rows[name] = {"epoch": {k: epoch[k] for k in ("wall_s", "data_s", "step_s", "images",
                                                              "images_per_s", "cpu_core_s")},
                              "loader_only": alone, "test_accuracy": epoch.get("test_accuracy")}
                print(f"{key} {name:>8}: epoch {epoch['wall_s']:.2f} s (data {epoch['data_s']:.2f} s, step "
                      f"{epoch['step_s']:.2f} s, {epoch['cpu_core_s']:.1f} CPU core-s); loader alone "
                      f"{alone['seconds']:.3f} s = {alone['images_per_s']:.0f} img/s, {alone['cpu_core_s']:.2f} core-s",
                      flush=True)
            inr, ten, jpg = rows["inr"], rows["tensor"], rows["jpeg-1w"]
            ratios = {"epoch_inr_over_tensor": round(inr["epoch"]["wall_s"] / ten["epoch"]["wall_s"], 3),
                      "epoch_inr_over_jpeg1": round(inr["epoch"]["wall_s"] / jpg["epoch"]["wall_s"], 3),
                      "loader_inr_over_tensor": round(inr["loader_only"]["seconds"] / ten["loader_only"]["seconds"], 3),
                      "loader_inr_over_jpeg1": round(inr["loader_only"]["seconds"] / jpg["loader_only"]["seconds"], 3)}
            print(f"{key}: epoch inr/tensor {ratios['epoch_inr_over_tensor']:.3f}x (target <= 1.10), "
                  f"inr/jpeg-1w {ratios['epoch_inr_over_jpeg1']:.3f}x (target < 1); loader alone inr/tensor "
                  f"{ratios['loader_inr_over_tensor']:.2f}x, inr/jpeg-1w {ratios['loader_inr_over_jpeg1']:.2f}x")
            out["sizes"][key] = {"images": n, "runs": rows, "ratios": ratios}
    settings = {"images_28": args.images, "images_64": args.images_64, "batch_size": args.batch_size,
                "epochs": 1, "warmup_batches": cfg.warmup_batches, "arch": "3x15", "jpeg_quality": 90,
                "test_images": 200, "threads": args.threads, "pipelines": [f"{p}:{w}" for p, w in PIPELINES]}
    write_results(args.output, results_document(
        "pipelines", "inr vs tensor vs jpeg (1 worker), one epoch of ResNet-18 on the embedded default, CPU",
        settings, out))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
