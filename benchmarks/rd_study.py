"""Rate–distortion study (issue 12): Rapid-INR among the field's codecs, on Kodak-derived crops.

One command runs ``rapidinr.study.rd.sweep`` with the byte-cap protocol on 64 random 32×32 crops
of the 24 Kodak photos downscaled 4× (``kodak/4:DIR``: 192×128 photos, portrait ones turned to
landscape; crops taken from each photo in turn at seeded random positions, seed 0); SIRENs 2x12,
3x15 and 3x20 (one rate point each), 1000 Adam steps at 1e-3, the ``cifar10`` dynamic-pruning
schedule with 250 retraining steps per round; codecs jpeg, jpeg-opt, webp, avif, jp2, jxl,
jpeg-opt-x2, webp-x2. It prints:
- per cap (320, 480, 640, 900, 1200 B/image; scaled by the pixel count at other sizes) every
  classical codec (mean PSNR, mean real bytes, or "unmet") and every INR variant (its largest
  architecture whose bytes per image fit the cap);
- BD-rate and BD-PSNR of the best INR variant (lowest BD-rate against optimized JPEG) against
  optimized JPEG, WebP and the envelope;
- the INR variants' bytes per image on 32 CIFAR-10 test images (the JPEG-q75 files of
  ../shared/data/cifar10-jpeg75: bytes only, never PSNR against published lossless numbers).

    python benchmarks/rd_study.py                 # 32×32, CPU-sized (minutes)
    python benchmarks/rd_study.py --size 64       # 64×64 crops, caps ×4
    python benchmarks/rd_study.py --kodak-full 1  # full-size Kodak, COIN-sized SIREN (GPU-sized; see below)

``--kodak-full N`` fits the first N full-resolution Kodak photos (768×512) with a COIN-sized SIREN
(10x28, COIN's ~0.3 bpp Kodak setting; no pruning) and sets it, the classical codecs over their
quality range and the published Kodak curves (COIN, COIN++, Strümpler et al., C3, BPG, VTM, ...)
on one figure's worth of JSON. On a CPU its quick default (``--full-steps 100``) only shows the
path works; on a GPU run all 24 with ``--full-steps 50000`` (COIN's) for a number to set beside
the published curves.

Kodak is read from ../shared/data/kodak (override with --kodak). Crops are not the Kodak set: the
published Kodak curves (768×512) are not drawn beside them. Writes
benchmarks/results/rd-study-<size>-<device>.json (settings, hardware, versions, every number).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from rapidinr.codec.prune import PRESETS, PruneConfig
from rapidinr.core.config import FitConfig
from rapidinr.core.devices import resolve_device
from rapidinr.core.results import write_results
from rapidinr.sources.datasets import load_source
from rapidinr.study.rd import ENVELOPE, RDConfig, cap_table, sweep

RESULTS = Path(__file__).parent / "results"
# ../shared/data/kodak from the project root (or from the folder above, for a git worktree)
KODAK = next((d for d in (Path(__file__).resolve().parents[k] / "shared" / "data" / "kodak" for k in (2, 3))
              if d.is_dir()), Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak")
CODECS = ("jpeg", "jpeg-opt", "webp", "avif", "jp2", "jxl", "jpeg-opt-x2", "webp-x2")
CAPS_32 = (320, 480, 640, 900, 1200)
CIFAR = KODAK.parent / "cifar10-jpeg75"
BD_AGAINST = ("jpeg-opt", "webp", ENVELOPE)


def best_variant(doc: dict) -> str:
    """The INR variant with the lowest BD-rate against optimized JPEG (the classical curve the INR
    curves overlap most; then the envelope; then the best PSNR at the largest architecture)."""
    for anchor in ("jpeg-opt", ENVELOPE):
        rows = [r for r in doc["bd"] if r["anchor"] == anchor and r["bd_rate_percent"] is not None]
        if rows:
            return min(rows, key=lambda r: r["bd_rate_percent"])["test"]
    inr = {k: v for k, v in doc["results"].items() if k.startswith("INR")}
    return max(inr, key=lambda k: inr[k]["psnr"][-1])


def cifar_bytes(folder: str, cfg: RDConfig, count: int, device) -> dict:
    """The same INR variants fitted to ``count`` CIFAR-10 JPEG-q75 test images: bytes per image only
    (a JPEG-q75 file is not a lossless original, so no PSNR is kept)."""
    data = load_source(f"cifar10-folder:{folder}", split="test")
    step = max(1, len(data) // count)  # spread over the classes, which are stored in order
    images = data.images[::step][:count]
    inr_cfg = RDConfig(archs=cfg.archs, fit=cfg.fit, prune=cfg.prune, qualities=(50,), downscale=(2,))
    doc = sweep(images, inr_cfg, device, progress=False, source="cifar10-folder:test")
    variants = {k: {"arch": v["arch"], "bytes": v["bytes"], "sparsity": v["sparsity"]}
                for k, v in doc["results"].items() if k.startswith("INR")}
    return {"images": int(images.shape[0]), "source": "cifar10-jpeg75 test split, every "
            f"{step}th image", "seconds": doc["seconds"], "variants": variants}


def kodak_full(args, device) -> int:
    """Full-size Kodak beside the published Kodak curves (the same dataset, so they are drawn)."""
    data = load_source(f"kodak:{args.kodak}", limit=args.kodak_full)
    cfg = RDConfig(archs=("10x28",), fit=FitConfig(steps=args.full_steps, lr=2e-4 if args.full_steps >= 10000 else 1e-3),
                   prune=PruneConfig(schedule=None), qualities=(10, 30, 50, 70, 90), downscale=(2,),
                   codecs=("jpeg-opt", "webp", "avif", "jp2"), protocol="quality", codec_points=6, anchors="kodak")
    doc = sweep(data.images, cfg, device, progress=True, source=data.source.replace(str(args.kodak), "KODAK"))
    print(f"{len(data)} full-size Kodak photos, 10x28 SIREN, {args.full_steps} steps:")
    for name, e in doc["results"].items():
        if name.startswith("INR") or name in cfg.codecs:
            print(f"  {name:<44} " + ", ".join(f"{b:.3f} bpp {p:.2f} dB" for b, p in zip(e["bpp"], e["psnr"])))
    print("published (Kodak, 24 images), for reference:")
    for name, e in doc["published"].items():
        print(f"  {name:<52} " + ", ".join(f"{b:.3f}:{p:.1f}" for b, p in zip(e["bpp"][:4], e["psnr"][:4])))
    out = write_results(RESULTS / f"rd-study-kodak-full-{torch.device(device).type}.json", doc)
    print(f"{doc['seconds']:.0f} s; wrote {out}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kodak", default=str(KODAK), help="the Kodak folder (kodim01..24.png)")
    p.add_argument("--size", type=int, default=32, help="crop side (default 32)")
    p.add_argument("--downscale", type=int, default=4, help="Kodak photos shrunk this much first (default 4)")
    p.add_argument("--crops", type=int, default=64, help="crops (default 64, the photos taken in turn)")
    p.add_argument("--archs", default="2x12,3x15,3x20", help="SIRENs, one rate point each")
    p.add_argument("--steps", type=int, default=1000, help="round-1 Adam steps at lr 1e-3 (paper 5000)")
    p.add_argument("--retrain-steps", type=int, default=250, help="steps per pruning round (paper 10000)")
    p.add_argument("--cifar10", default=str(CIFAR),
                   help="CIFAR-10 JPEG-q75 folder: the INR's bytes per image on CIFAR-10 (bytes only; 'none' to skip)")
    p.add_argument("--kodak-full", type=int, default=0, metavar="N",
                   help="instead: the first N full-size Kodak photos with a COIN-sized SIREN (GPU-sized)")
    p.add_argument("--full-steps", type=int, default=100, help="--kodak-full Adam steps (COIN: 50000)")
    p.add_argument("--device", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if not Path(args.kodak).is_dir():
        print(f"rd_study: no Kodak folder at {args.kodak} (pass --kodak DIR)", file=sys.stderr)
        return 2
    device = resolve_device(args.device)
    if args.kodak_full:
        return kodak_full(args, device)
    scale = (args.size / 32) ** 2
    caps = tuple(round(c * scale) for c in CAPS_32)
    data = load_source(f"kodak/{args.downscale}:{args.kodak}", (args.size, args.size), limit=args.crops, seed=0)
    cfg = RDConfig(archs=tuple(args.archs.split(",")), fit=FitConfig(steps=args.steps, lr=1e-3),
                   prune=PruneConfig(schedule=PRESETS["cifar10"], retrain_steps=args.retrain_steps, retrain_lr=5e-4),
                   codecs=CODECS, protocol="cap", caps=caps)
    doc = sweep(data.images, cfg, device, progress=True, source=data.source.replace(str(args.kodak), "KODAK"))
    best = best_variant(doc)
    doc["best_inr_variant"] = best
    doc["best_inr_bd"] = [r for r in doc["bd"] if r["test"] == best and r["anchor"] in BD_AGAINST]
    table = cap_table(doc)
    doc["table"] = table
    print(table)
    print(f"\nBD of the best INR variant ({best}), bytes per image, PCHIP over the overlap only:")
    for r in doc["best_inr_bd"]:
        rate = "n/a" if r["bd_rate_percent"] is None else f"{r['bd_rate_percent']:+.1f}%"
        dpsnr = "n/a" if r["bd_psnr_db"] is None else f"{r['bd_psnr_db']:+.2f} dB"
        print(f"  vs {r['anchor']:<28} BD-rate {rate:>9}  BD-PSNR {dpsnr:>10}  "
              f"(overlap: PSNR {r['overlap_psnr']:.2f}, log-rate {r['overlap_log_rate']:.2f}) {r['note']}")
    if args.cifar10 != "none" and Path(args.cifar10).is_dir() and args.size == 32:
        doc["cifar10_jpeg75_inr_bytes"] = cifar_bytes(args.cifar10, cfg, 32, device)
        print("\nINR bytes per image on CIFAR-10 (JPEG-q75 files, test split; bytes only: their PSNR is not "
              "comparable with published lossless CIFAR-10 numbers):")
        for name, e in doc["cifar10_jpeg75_inr_bytes"]["variants"].items():
            print(f"  {name:<44} " + ", ".join(f"{a} {b:.0f} B" for a, b in zip(e["arch"], e["bytes"])))
    out = write_results(RESULTS / f"rd-study-{args.size}x{args.size}-{torch.device(device).type}.json", doc)
    print(f"{doc['seconds']:.0f} s; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
