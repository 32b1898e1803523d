"""`rapidinr demo`: the main job on the embedded default."""
from __future__ import annotations

from pathlib import Path

from rapidinr.study.demo import demo


def add(sub):
    p = sub.add_parser("demo", help="encode part of the embedded Fashion-MNIST subset and report")
    p.add_argument("-o", "--output", default="rapidinr-demo", help="folder for the demo's outputs")
    p.add_argument("--images", type=int, default=512, help="how many images to encode (default 512)")
    p.add_argument("--steps", type=int, default=1000, help="Adam steps per image (default 1000)")
    p.add_argument("--arch", default="3x15")
    p.add_argument("--device", default=None)
    p.add_argument("--no-figures", action="store_true", help="skip writing the quick figures at the end")
    p.set_defaults(run=run)


def run(args) -> int:
    demo(Path(args.output), images=args.images, steps=args.steps, arch=args.arch, device=args.device,
         figures=not args.no_figures)
    return 0


