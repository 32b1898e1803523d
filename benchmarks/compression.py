"""Compression benchmark (paper Sec. IV, VI-A/B; issue 3): pruning, layer-wise quantization, JPEG.

Runs the rate-distortion sweep (``rapidinr.study.rd.sweep``) on two sets of real photos (random crops
of scikit-image's bundled colour samples, offline):
- small: 64 crops of 32×32, a 3x15 SIREN, the ``cifar10`` dynamic-pruning preset (paper Eq. 2),
  no L1 round (the paper skips it for 32×32);
- large: 16 crops of 64×64, a 4x24 SIREN, L1 round 0.2 then the ``flowers102`` preset (Eq. 3).
and prints, side by side from one run: what 8-bit layer-wise / all-layer quantization costs,
what dynamic pruning saves and costs, and each INR variant's PSNR against JPEG and downsampled
JPEG at the same real bytes per image. Defaults are far fewer steps than the paper (5000 + 10000
+ 10000) so it finishes in minutes on a CPU; ``--paper`` uses the paper's steps and rates.

    python benchmarks/compression.py            # quick defaults
    python benchmarks/compression.py --paper    # paper's steps (hours on a CPU)

Writes benchmarks/results/compression-<device>.json (settings, hardware, versions, all numbers)
and the Fig. 3 plots next to it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from rapidinr.codec.prune import PRESETS, PruneConfig
from rapidinr.core.config import FitConfig
from rapidinr.core.devices import resolve_device
from rapidinr.sources.datasets import load_sample_crops
from rapidinr.study.figures.rate_distortion import plot_rd
from rapidinr.study.rd import RDConfig, sweep

RESULTS = Path(__file__).parent / "results"


def header_free_jpeg_psnr(results: dict, inr_bytes: float) -> float:
    """PSNR of JPEG whose *entropy-coded data alone* equals ``inr_bytes``: interpolated on the JPEG
    quality curve (past quality 100: quality 100's PSNR). An estimate (a JPEG without headers is not
    a file), labelled as such."""
    curve = results["results"]["JPEG"]
    xs, ys = np.array(curve["scan_bytes_estimate"]), np.array(curve["psnr"])
    order = np.argsort(xs)
    return float(np.interp(inr_bytes, xs[order], ys[order]))  # past the best quality: its PSNR (a floor)


def summarize(results: dict) -> dict:
    """The issue's checks, from one sweep's results."""
    r = {k: v for k, v in results["results"].items()}

    def psnr(name):
        return r[name]["psnr"][0]

    def size(name):
        return r[name]["bytes"][0]

    out = {
        "lw8_loss_db_unpruned": psnr("INR fp32") - psnr("INR 8-bit layer-wise, unpruned"),
        "lw8_b16_loss_db_unpruned": psnr("INR fp32") - psnr("INR 8-bit layer-wise, 16-bit biases, unpruned"),
        "all8_loss_db_unpruned": psnr("INR fp32") - psnr("INR 8-bit all layers, unpruned"),
        "lw8_loss_db_pruned": psnr("INR pruned") - psnr("INR 8-bit layer-wise"),
        "lw8_b16_loss_db_pruned": psnr("INR pruned") - psnr("INR 8-bit layer-wise, 16-bit biases"),
        "all8_loss_db_pruned": psnr("INR pruned") - psnr("INR 8-bit all layers"),
        "prune_bytes_cut_fp32": 1 - size("INR pruned") / size("INR fp32"),
        "prune_psnr_cost_db": psnr("INR fp32") - psnr("INR pruned"),
        "prune_bytes_cut_8bit_lw": 1 - size("INR 8-bit layer-wise") / size("INR 8-bit layer-wise, unpruned"),
        "prune_param_sparsity": r["INR pruned"]["sparsity"][0],
    }
    if "INR fp32 + zstd" in r:
        out["prune_bytes_cut_fp32_zstd"] = 1 - size("INR pruned + zstd") / size("INR fp32 + zstd")
    for key, base in (("INR 8-bit layer-wise, 16-bit biases + QAT", "INR 8-bit layer-wise, 16-bit biases"),
                      ("INR 8-bit all layers + QAT", "INR 8-bit all layers")):
        if key in r:
            tag = "lw8_b16" if "layer-wise" in key else "all8"
            out[f"{tag}_qat_gain_db"] = psnr(key) - psnr(base)
            out[f"{tag}_qat_loss_db_pruned"] = psnr("INR pruned") - psnr(key)
    return {k: round(v, 4) for k, v in out.items()}


def print_report(label: str, results: dict) -> None:
    print(f"\n== {label}: {results['images']} images {results['height']}x{results['width']}, "
          f"settings {json.dumps(results['settings']['fit'] | {'prune': results['settings']['prune']})}")
    print(f"{'variant':<50}{'B/img':>9}{'bpp':>7}{'INR dB':>8}{'JPEG dB':>9}{'(q)':>6}{'down dB':>9}"
          f"{'INR-JPEG':>10}{'INR-down':>10}{'JPEG hdr-free est.':>20}")
    for m in results["matched"]:
        est = header_free_jpeg_psnr(results, m["inr_bytes"])
        bpp = 8 * m["inr_bytes"] / (results["height"] * results["width"])
        print(f"{m['variant']:<50}{m['inr_bytes']:>9.1f}{bpp:>7.2f}{m['inr_psnr']:>8.2f}{m['jpeg_psnr']:>9.2f}"
              f"{m['jpeg_quality_mean']:>6.0f}{m['jpeg_downsampled_psnr']:>9.2f}{m['inr_minus_jpeg_db']:>+10.2f}"
              f"{m['inr_minus_downsampled_db']:>+10.2f}{est:>20.2f}")
    jpeg = results["results"]["JPEG"]
    print("JPEG curve (quality: bytes, dB): " + ", ".join(
        f"q{q}: {b:.0f} B {p:.2f}" for q, b, p in zip(jpeg["quality"], jpeg["bytes"], jpeg["psnr"])))
    summary = summarize(results)
    print("checks: " + ", ".join(f"{k}={v}" for k, v in summary.items()))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None)
    p.add_argument("--paper", action="store_true", help="the paper's steps and rates (5000@5e-4, 10000@2e-4)")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--retrain-steps", type=int, default=1000)
    p.add_argument("--retrain-lr", type=float, default=5e-4)
    p.add_argument("--qat-steps", type=int, default=300)
    p.add_argument("--large-images", type=int, default=16)
    p.add_argument("--large-arch", default="4x24")
    p.add_argument("--large-steps", type=int, default=1000)
    p.add_argument("--large-retrain-steps", type=int, default=300)
    p.add_argument("--skip-large", action="store_true")
    p.add_argument("--output", default=None)
    args = p.parse_args(argv)
    if args.paper:
        args.steps, args.lr, args.retrain_steps, args.retrain_lr = 5000, 5e-4, 10000, 2e-4
        args.large_steps, args.large_retrain_steps = 5000, 10000
    device = resolve_device(args.device)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = Path(args.output) if args.output else RESULTS / f"compression-{device.type}.json"
    started = time.perf_counter()
    runs = {}

    small = load_sample_crops(args.images, (32, 32), seed=0).images
    cfg = RDConfig(archs=("3x15",), fit=FitConfig(steps=args.steps, lr=args.lr),
                   prune=PruneConfig(schedule=PRESETS["cifar10"], retrain_steps=args.retrain_steps,
                                     retrain_lr=args.retrain_lr),
                   lossless="zstd", finetune_steps=args.qat_steps)
    runs["32x32"] = sweep(small, cfg, device, progress=sys.stderr.isatty(), source="samples-crops:32x32")
    print_report("32x32 crops, 3x15, cifar10 preset", runs["32x32"])

    if not args.skip_large:
        large = load_sample_crops(args.large_images, (64, 64), seed=0, downscale=2).images
        cfg = RDConfig(archs=(args.large_arch,), fit=FitConfig(steps=args.large_steps, lr=args.lr),
                       prune=PruneConfig(l1_ratio=0.2, schedule=PRESETS["flowers102"],
                                         retrain_steps=args.large_retrain_steps, retrain_lr=args.retrain_lr),
                       lossless="zstd", finetune_steps=0)
        runs["64x64"] = sweep(large, cfg, device, progress=sys.stderr.isatty(), source="samples-crops:64x64")
        print_report(f"64x64 crops, {args.large_arch}, L1 0.2 + flowers102 preset", runs["64x64"])

    report = {"name": "compression", "seconds": round(time.perf_counter() - started, 1),
              "argv": sys.argv[1:] if argv is None else list(argv),
              "summary": {k: summarize(v) for k, v in runs.items()},
              "header_free_jpeg_note": "JPEG hdr-free est.: PSNR of JPEG whose entropy-coded data alone "
                                       "equals the INR's bytes (interpolated; an estimate, not a file)",
              "runs": runs}
    out.write_text(json.dumps(report, indent=1) + "\n")
    for key, results in runs.items():
        plot_rd(results, variants=[n for n in results["results"] if "unpruned" not in n and "zstd" not in n]
                ).savefig(out.with_name(f"{out.stem}-rd-{key}.png"), dpi=110)
    print(f"\nwrote {out} ({report['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
