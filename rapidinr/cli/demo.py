"""`rapidinr demo`: the main job on the embedded default, then RGB photo crops."""
from __future__ import annotations

from pathlib import Path

from rapidinr.study.demo import QUICK, demo


def add(sub):
    p = sub.add_parser("demo", help="encode part of the embedded Fashion-MNIST subset and RGB photo crops, and report")
    p.add_argument("-o", "--output", default="rapidinr-demo", help="folder for the demo's outputs")
    p.add_argument("--images", type=int, default=None, help="Fashion-MNIST images to encode (default 512)")
    p.add_argument("--crops", type=int, default=None, help="32x32 RGB photo crops to encode (default 32; 0: none)")
    p.add_argument("--steps", type=int, default=None, help="Adam steps per image (default: the learned init's "
                   "recommendation for Fashion-MNIST, else 1000)")
    p.add_argument("--arch", default="3x15")
    p.add_argument("--device", default=None)
    p.add_argument("--no-figures", action="store_true", help="skip writing the quick figures at the end")
    p.add_argument("--quick", action="store_true", help=f"a smoke run in seconds: {QUICK['images']} images, "
                   f"{QUICK['crops']} crops at {QUICK['crop_steps']} steps, no figures")
    p.set_defaults(run=run)


def run(args) -> int:
    quick = args.quick
    steps = args.steps
    crops = args.crops if args.crops is not None else (QUICK["crops"] if quick else 32)
    images = args.images if args.images is not None else (QUICK["images"] if quick else 512)
    demo(Path(args.output), images=images, steps=steps, arch=args.arch, device=args.device,
         figures=not (args.no_figures or quick), crops=crops,
         crop_steps=QUICK["crop_steps"] if quick and steps is None else None)
    return 0
