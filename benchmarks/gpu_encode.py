"""Encode throughput on a GPU, and the projected time to encode 50,000 32×32 images (issue 7).

Measures, with synchronized timers after a warm-up (which absorbs compilation):
- image-steps/s and images/s (at 2000 steps per image) of the batched fit for 32×32 crops with a
  3x15 SIREN and for 224×224 crops with a 10x40 SIREN (the paper's CIFAR and Mini-ImageNet
  architectures), in each precision/kernel variant asked for: ``fp32`` (eager, the library's
  default), ``tf32`` (TF32 tensor-core matmuls: ``FitConfig.precision``), ``compile``
  (torch.compile of the fused-elementwise form, ``siren.compiled_loss_and_grad``), ``bf16``
  (forward/backward in bfloat16, float32 Adam: ``precision.bfloat16_loss_and_grad``);
  each with the PSNR it reaches, so a variant that is fast but loses quality shows it;
- end to end: an encode of ``--proj-images`` 32×32 crops with ``target_psnr`` 30 dB (early stop
  and batch compaction on), random and learned init (meta-learned here from other crops), and the
  projected time for 50,000 images (the aim: under 5 minutes).

    python benchmarks/gpu_encode.py                  # on a CUDA GPU (an H200 was the target)
    python benchmarks/gpu_encode.py --cpu-smoke      # tiny sizes on the CPU: exercises every path

Writes benchmarks/results/gpu_encode-<gpu>.json (or gpu_encode-cpu-smoke.json). The CPU smoke run
checks the code, not the speed: its numbers mean nothing for a GPU.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import torch

from rapidinr.codec.measure import measure_weights
from rapidinr.core import siren
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.precision import bfloat16_loss_and_grad
from rapidinr.core.results import results_document, write_results
from rapidinr.encoding.fit import fit
from rapidinr.encoding.learned_init import MetaConfig, meta_learn
from rapidinr.sources.datasets import load_sample_crops
from rapidinr.training.timing import synchronize

RESULTS = Path(__file__).parent / "results"
VARIANTS = ("fp32", "tf32", "compile", "bf16")


@contextmanager
def variant(name: str):
    """Install a kernel variant for one measurement (tf32 is the fit's own ``precision`` setting)."""
    if name == "bf16":
        with bfloat16_loss_and_grad():
            yield
        return
    eager = siren.loss_and_grad
    try:
        if name == "compile":
            siren.loss_and_grad = siren.compiled_loss_and_grad()
        yield
    finally:
        siren.loss_and_grad = eager


def throughput(images, arch, steps, device, name, memory_mb, warmup_steps):
    """image-steps/s of the fit (warm-up run first) and the PSNR it reaches after ``steps``."""
    precision = "tf32" if name == "tf32" else "fp32"
    with variant(name):
        cfg = FitConfig(steps=steps, memory_budget_mb=memory_mb, precision=precision)
        fit(images[: min(len(images), 64)], arch, replace(cfg, steps=warmup_steps),
            device=device, progress=False)  # warm-up: kernels, autotuning, compilation
        synchronize(device)
        began = time.perf_counter()
        result = fit(images, arch, cfg, device=device, progress=False)
        synchronize(device)
        seconds = time.perf_counter() - began
    rate = result.image_steps / seconds
    return {"image_steps_per_s": rate, "images_per_s_at_2000_steps": rate / 2000, "seconds": seconds,
            "images": len(images), "steps": steps, "psnr": float(measure_weights(result.params.to(device), arch, images).mean())}


def to_target(images, arch, steps, target, device, init, memory_mb):
    synchronize(device)
    began = time.perf_counter()
    result = fit(images, arch, FitConfig(steps=steps, target_psnr=target, memory_budget_mb=memory_mb),
                 device=device, init=init, progress=False)
    synchronize(device)
    seconds = time.perf_counter() - began
    final = measure_weights(result.params.to(device), arch, images)
    return {"seconds": seconds, "images_per_s": len(images) / seconds, "image_steps": result.image_steps,
            "reached_train_target": int((result.train_psnr >= target).sum()), "images": len(images),
            "psnr": float(final.mean()), "projected_50k_s": 50_000 * seconds / len(images)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--variants", default="fp32,tf32,compile,bf16", help=f"any of {','.join(VARIANTS)}")
    parser.add_argument("--small-images", type=int, default=16384, help="32x32 crops for throughput")
    parser.add_argument("--small-steps", type=int, default=300, help="steps timed (rate is per step)")
    parser.add_argument("--large-images", type=int, default=256, help="224x224 crops for throughput")
    parser.add_argument("--large-steps", type=int, default=50)
    parser.add_argument("--proj-images", type=int, default=16384, help="32x32 crops encoded to --target")
    parser.add_argument("--target", type=float, default=30.0, help="PSNR target of the projection (dB)")
    parser.add_argument("--max-steps", type=int, default=2000, help="step budget of the projection")
    parser.add_argument("--meta-outer-steps", type=int, default=300, help="learned init for 32x32 RGB, made here")
    parser.add_argument("--memory-mb", type=float, default=32768, help="fit's working memory per chunk")
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU (checks the code only)")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    if any(v not in VARIANTS for v in variants):
        parser.error(f"--variants: choose from {','.join(VARIANTS)}")
    large_arch_text, large_size, warmup = "10x40", 224, 20
    if args.cpu_smoke:
        args.device = "cpu"
        args.small_images, args.small_steps, args.large_images, args.large_steps = 16, 10, 2, 3
        args.proj_images, args.target, args.max_steps, args.meta_outer_steps = 16, 18.0, 60, 3
        args.memory_mb, large_arch_text, large_size, warmup = 256, "3x16", 48, 2
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_encode: no CUDA GPU here; run with --cpu-smoke to exercise the code on the CPU", file=sys.stderr)
        raise SystemExit(2)
    name = "cpu-smoke" if args.cpu_smoke else re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")
    out = Path(args.out or RESULTS / f"gpu_encode-{name}.json")

    small = load_sample_crops(args.small_images, (32, 32), seed=0).images
    small_arch = Arch.parse("3x15", 3)
    large = load_sample_crops(args.large_images, (large_size, large_size), seed=0, downscale=1).images
    large_arch = Arch.parse(large_arch_text, 3)
    results = {"throughput": {}, "to_target": {}}
    for v in variants:
        for label, images, arch, steps in (("32x32 3x15", small, small_arch, args.small_steps),
                                           (f"{large_size}x{large_size} {large_arch.name}", large, large_arch,
                                            args.large_steps)):
            row = throughput(images, arch, steps, device, v, args.memory_mb, warmup)
            results["throughput"].setdefault(label, {})[v] = row
            print(f"{label:>16s} {v:>8s}: {row['image_steps_per_s']:12.0f} image-steps/s = "
                  f"{row['images_per_s_at_2000_steps']:9.2f} images/s at 2000 steps; PSNR after {steps} steps "
                  f"{row['psnr']:.2f} dB", flush=True)

    proj = load_sample_crops(args.proj_images, (32, 32), seed=1).images  # other positions than the init's
    began = time.perf_counter()
    init, _ = meta_learn(load_sample_crops(2048 if not args.cpu_smoke else 64, (32, 32), seed=0).images,
                         small_arch, MetaConfig(outer_steps=args.meta_outer_steps, meta_batch=256
                                                if not args.cpu_smoke else 8), device=device, progress=False)
    meta_seconds = time.perf_counter() - began
    for label, start in (("random", None), ("learned", init)):
        row = to_target(proj, small_arch, args.max_steps, args.target, device, start, args.memory_mb)
        results["to_target"][label] = row
        print(f"to {args.target} dB, {label:>7s} init: {row['images_per_s']:.1f} images/s, "
              f"{row['reached_train_target']}/{row['images']} reached, PSNR {row['psnr']:.2f} dB -> "
              f"50,000 images in {row['projected_50k_s'] / 60:.1f} min (projected)", flush=True)
    results["meta_seconds"] = meta_seconds
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    settings.update(variants=variants, large_arch=large_arch.name, large_size=large_size)
    path = write_results(out, results_document("gpu_encode", "batched SIREN encode throughput on a GPU and the "
                                               "projected 50k-image encode time", settings, results))
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
