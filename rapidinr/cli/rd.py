"""`rapidinr rd`: a rate-distortion sweep (paper Fig. 3) written as CompressAI-shaped results JSON."""
from __future__ import annotations

import sys
from pathlib import Path

from rapidinr.codec.prune import PruneConfig, parse_schedule
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.devices import resolve_device
from rapidinr.core.errors import UserError
from rapidinr.core.results import write_results
from rapidinr.sources.datasets import load_source, parse_size
from rapidinr.study.rd import RDConfig, cap_table, sweep


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(t) for t in str(text).split(",") if t.strip())
    except ValueError:
        raise UserError(f"{option}: expected comma-separated integers, got {text!r}") from None
    if not values:
        raise UserError(f"{option}: give at least one value")
    return values


def add(sub):
    p = sub.add_parser("rd", help="rate-distortion sweep: INR variants vs JPEG and downsampled JPEG")
    p.add_argument("source", help="images: a folder or a named source (e.g. samples-crops, cifar10:ROOT)")
    p.add_argument("-o", "--output", required=True, help="results JSON to write")
    p.add_argument("--size", help="resize (or crop size for samples-crops) HxW, default 32x32 for samples-crops")
    p.add_argument("--limit", type=int, default=64, help="images to use (default 64)")
    p.add_argument("--split", default="train")
    p.add_argument("--archs", default="3x15", help="comma-separated architectures, one rate point each")
    p.add_argument("--steps", type=int, default=2000, help="round-1 Adam steps (default 2000; paper 5000)")
    p.add_argument("--lr", type=float, default=1e-3, help="round-1 learning rate (default 1e-3; paper 5e-4)")
    p.add_argument("--prune-l1", type=float, default=0.0, help="round 2 L1 ratio (default 0: skipped; paper 0.2)")
    p.add_argument("--dynamic-prune", default="cifar10",
                   help="round 3 schedule: cifar10, flowers102, mini-imagenet or PSNR:RATIO,... (default cifar10)")
    p.add_argument("--retrain-steps", type=int, default=1000,
                   help="steps per pruning round (default 1000; paper 10000)")
    p.add_argument("--retrain-lr", type=float, default=5e-4, help="retraining learning rate (default 5e-4; paper 2e-4)")
    p.add_argument("--qat-steps", type=int, default=0, help="add 8-bit variants with this many QAT steps")
    p.add_argument("--lossless", choices=["none", "zstd"], default="none", help="lossless stage on compressed INRs")
    p.add_argument("--qualities", default="1,5,10,20,30,40,50,60,70,80,90,95,100", help="JPEG qualities")
    p.add_argument("--downscale", default="2,4", help="JPEG downsampling factors (default 2,4)")
    p.add_argument("--codecs", default="",
                   help="classical codecs beside the paper's JPEG: jpeg, jpeg-opt, jpeg-opt420, webp, avif, jp2, jxl "
                        "(the [jxl] extra); add -x2 to downscale first, e.g. jpeg,jpeg-opt,webp,avif,jp2,webp-x2")
    p.add_argument("--protocol", choices=["quality", "cap"], default="quality",
                   help="quality: each codec over its quality range; cap: per image the best quality under each cap")
    p.add_argument("--caps", default="320,480,640,900,1200", help="byte caps per image for --protocol cap")
    p.add_argument("--anchors", choices=["cifar10", "kodak"], default=None,
                   help="add the published curves of this dataset (only beside the same images)")
    p.add_argument("--preset", default=None,
                   help="compact: add the INR variants of `encode --preset compact` (on the shared fit, and from "
                        "the learned init that ships for the arch and size, where one does)")
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=run)


def run(args) -> int:
    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise UserError(f"{out}: already exists (pass --overwrite to replace it)")
    if not out.parent.is_dir():
        raise UserError(f"{out}: folder {out.parent} does not exist")
    archs = tuple(a.strip() for a in args.archs.split(",") if a.strip())
    for arch in archs:
        Arch.parse(arch)
    schedule = None if args.dynamic_prune in ("none", "") else parse_schedule(args.dynamic_prune)
    cfg = RDConfig(archs=archs, fit=FitConfig(steps=args.steps, lr=args.lr, seed=args.seed),
                   prune=PruneConfig(l1_ratio=args.prune_l1, schedule=schedule, retrain_steps=args.retrain_steps,
                                     retrain_lr=args.retrain_lr),
                   qualities=_ints(args.qualities, "--qualities"), downscale=_ints(args.downscale, "--downscale"),
                   lossless=None if args.lossless == "none" else args.lossless, finetune_steps=args.qat_steps,
                   codecs=tuple(c.strip() for c in args.codecs.split(",") if c.strip()), protocol=args.protocol,
                   caps=tuple(float(c) for c in _ints(args.caps, "--caps")), anchors=args.anchors,
                   compact=args.preset)
    if args.limit < 1:
        raise UserError(f"--limit must be >= 1, got {args.limit}")
    if args.qat_steps < 0:
        raise UserError(f"--qat-steps must be >= 0, got {args.qat_steps}")
    device = resolve_device(args.device)
    size = parse_size(args.size)
    data = load_source(args.source, size, args.split, False, False, args.limit, args.seed)
    results = sweep(data.images, cfg, device, progress=not args.quiet, source=data.source)
    write_results(out, results)
    for m in results["matched"]:
        print(f"{m['arch']:>6} {m['variant']:<32} {m['inr_bytes']:8.1f} B  INR {m['inr_psnr']:6.2f} dB  "
              f"JPEG {m['jpeg_psnr']:6.2f}  downsampled {m['jpeg_downsampled_psnr']:6.2f}", file=sys.stdout)
    if args.protocol == "cap" and cfg.codecs:
        print(cap_table(results))
    print(f"wrote {out}")
    return 0
