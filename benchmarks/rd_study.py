"""Rate–distortion study (issue 12): Rapid-INR among the field's codecs, on Kodak-derived crops.

One command runs ``rapidinr.study.rd.sweep`` with the byte-cap protocol on random 32×32 crops of
the 24 Kodak photos downscaled 4× (``kodak/4:DIR``, 192×128 photos, crops taken from each photo
in turn, seed 0), and prints:
- per cap (320, 480, 640, 900, 1200 B/image; scaled by the pixel count at other sizes) every
  classical codec (mean PSNR, mean real bytes, or "unmet") and every INR variant (its largest
  architecture whose bytes per image fit the cap);
- BD-rate and BD-PSNR of the best INR variant against optimized JPEG, WebP and the envelope.

    python benchmarks/rd_study.py                 # 32×32, CPU-sized (minutes)
    python benchmarks/rd_study.py --size 64       # 64×64 crops, caps ×4

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
from rapidinr.core.results import write_results
from rapidinr.encoding.runner import resolve_device
from rapidinr.sources.datasets import load_source
from rapidinr.study.rd import ENVELOPE, RDConfig, cap_table, sweep

RESULTS = Path(__file__).parent / "results"
# ../shared/data/kodak from the project root (or from the folder above, for a git worktree)
KODAK = next((d for d in (Path(__file__).resolve().parents[k] / "shared" / "data" / "kodak" for k in (2, 3))
              if d.is_dir()), Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak")
CODECS = ("jpeg", "jpeg-opt", "webp", "avif", "jp2", "jxl", "jpeg-opt-x2", "webp-x2")
CAPS_32 = (320, 480, 640, 900, 1200)
BD_AGAINST = ("jpeg-opt", "webp", ENVELOPE)


def best_variant(doc: dict) -> str:
    """The INR variant with the lowest BD-rate against the envelope (then optimized JPEG; then the
    best PSNR at its largest architecture, where no BD-rate has a number)."""
    for anchor in (ENVELOPE, "jpeg-opt"):
        rows = [r for r in doc["bd"] if r["anchor"] == anchor and r["bd_rate_percent"] is not None]
        if rows:
            return min(rows, key=lambda r: r["bd_rate_percent"])["test"]
    inr = {k: v for k, v in doc["results"].items() if k.startswith("INR")}
    return max(inr, key=lambda k: inr[k]["psnr"][-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kodak", default=str(KODAK), help="the Kodak folder (kodim01..24.png)")
    p.add_argument("--size", type=int, default=32, help="crop side (default 32)")
    p.add_argument("--downscale", type=int, default=4, help="Kodak photos shrunk this much first (default 4)")
    p.add_argument("--crops", type=int, default=48, help="crops (default 48: two per photo)")
    p.add_argument("--archs", default="2x12,3x15,3x20", help="SIRENs, one rate point each")
    p.add_argument("--steps", type=int, default=800, help="round-1 Adam steps at lr 1e-3 (paper 5000)")
    p.add_argument("--retrain-steps", type=int, default=200, help="steps per pruning round (paper 10000)")
    p.add_argument("--device", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if not Path(args.kodak).is_dir():
        print(f"rd_study: no Kodak folder at {args.kodak} (pass --kodak DIR)", file=sys.stderr)
        return 2
    device = resolve_device(args.device)
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
    out = write_results(RESULTS / f"rd-study-{args.size}x{args.size}-{torch.device(device).type}.json", doc)
    print(f"{doc['seconds']:.0f} s; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
