"""What lower arithmetic precision costs a SIREN fit in PSNR, measured on the CPU by emulation (issue 7).

For each image set (the Fashion-MNIST test split resized to 32×32, grey; photo crops at 32×32,
RGB) it fits 3x15 SIRENs from the same random init for ``--steps`` steps, once per precision,
side by side in one run:
  fp32          the library's default;
  tf32          every matmul operand rounded to TF32's 10 mantissa bits, float32 sums: what
                ``encode --precision tf32`` runs on a CUDA GPU's tensor cores;
  bf16-matmul   operands rounded to bfloat16's 7 bits, float32 sums: bf16 autocast on tensor cores;
  bf16          loss and gradient computed in bfloat16 end to end (float32 Adam).
and reports each one's mean decoded PSNR (float and as a .rinr stores it, 8-bit hidden layers)
and its difference to fp32. The emulations give the PSNR a GPU would reach, not its speed:
``benchmarks/gpu_encode.py`` times the real kernels on a GPU.

    python benchmarks/precision.py            # 64 images per set, 2000 steps (a few minutes)
    python benchmarks/precision.py --quick    # seconds: a smoke test

Writes benchmarks/results/precision-cpu.json.
"""
from __future__ import annotations

import argparse
from contextlib import nullcontext
from pathlib import Path

import torch

from rapidinr.codec.measure import measure_weights
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.precision import bfloat16_loss_and_grad, emulated_matmul_operands
from rapidinr.core.results import results_document, write_results
from rapidinr.encoding.fit import fit
from rapidinr.encoding.init_tuning import stored_psnr
from rapidinr.sources.datasets import load_sample_crops, load_source

RESULTS = Path(__file__).parent / "results"
PRECISIONS = {  # name -> the context a fit runs in
    "fp32": nullcontext,
    "tf32": lambda: emulated_matmul_operands("tf32"),
    "bf16-matmul": lambda: emulated_matmul_operands("bf16"),
    "bf16": bfloat16_loss_and_grad,
}


def image_sets(count: int) -> dict[str, torch.Tensor]:
    """The held-back images measured: uint8 (N, C, 32, 32) each."""
    return {"fashion-mnist-test@32x32": load_source("default", (32, 32), "test", False, False, count, 0).images,
            "photo-crops@32x32": load_sample_crops(count, (32, 32), seed=1).images}


def measure_variants(images: torch.Tensor, cfg: FitConfig) -> dict[str, dict[str, float]]:
    """{precision: {psnr, psnr_8bit, delta_db, delta_8bit_db}} for one image set."""
    arch = Arch.parse("3x15", images.shape[1])
    rows = {}
    for name, context in PRECISIONS.items():
        with context():
            result = fit(images, arch, cfg, progress=False)
        rows[name] = {"psnr": float(measure_weights(result.params, arch, images).mean()),
                      "psnr_8bit": float(stored_psnr(images, result.params, arch).mean()),
                      "refits": result.refits}
    for row in rows.values():
        row["delta_db"] = row["psnr"] - rows["fp32"]["psnr"]
        row["delta_8bit_db"] = row["psnr_8bit"] - rows["fp32"]["psnr_8bit"]
    return rows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=64, help="images per set")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="8 images, 50 steps")
    parser.add_argument("--out", help="results JSON (default: benchmarks/results/precision-cpu.json)")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.steps = 8, 50
    torch.set_num_threads(args.threads)
    cfg = FitConfig(steps=args.steps)
    results = {}
    print(f"3x15 SIRENs, {args.steps} steps at lr {cfg.lr:g} from the random init; mean decoded PSNR "
          f"(and with 8-bit hidden layers), difference to fp32")
    for label, images in image_sets(args.images).items():
        results[label] = rows = measure_variants(images, cfg)
        for name, row in rows.items():
            print(f"  {label:<26} {name:<12} {row['psnr']:6.2f} dB ({row['delta_db']:+.2f})   "
                  f"8-bit {row['psnr_8bit']:6.2f} dB ({row['delta_8bit_db']:+.2f})", flush=True)
    settings = {"images": args.images, "steps": args.steps, "lr": cfg.lr, "arch": "3x15",
                "threads": torch.get_num_threads(), "precisions": list(PRECISIONS)}
    path = write_results(args.out or RESULTS / "precision-cpu.json", results_document(
        "precision", "PSNR cost of TF32 / bfloat16 arithmetic in the SIREN fit, emulated on the CPU",
        settings, results))
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
