"""`rapidinr meta-init`: meta-learn one starting point for every image's SIREN (Reptile)."""
from __future__ import annotations

import shlex
import time
from pathlib import Path

from rapidinr.core.config import Arch
from rapidinr.core.devices import resolve_device
from rapidinr.core.errors import UserError
from rapidinr.encoding.init_tuning import recommend_fit
from rapidinr.encoding.learned_init import LearnedInit, MetaConfig, config_json, meta_learn, save_init
from rapidinr.sources.datasets import load_source, parse_size


def add(sub):
    p = sub.add_parser("meta-init", help="meta-learn an initialization from a dataset's training split "
                       "(used by encode --init)")
    p.add_argument("source", help="training images: a folder or a named source, as for encode "
                   "(use the training split, never the images you will report on)")
    p.add_argument("-o", "--output", required=True, help="the init file to write (.safetensors)")
    p.add_argument("--arch", default="3x15", help="LAYERSxHIDDEN, e.g. 3x15 (default)")
    p.add_argument("--w0", type=float, default=30.0, help="SIREN frequency (default 30)")
    p.add_argument("--size", help="resize every image to HxW (the init is for this size only)")
    p.add_argument("--split", default="train", help="train (default) or test (named datasets)")
    p.add_argument("--limit", type=int, help="use only the first N images")
    p.add_argument("--outer-steps", type=int, default=300, help="Reptile updates (default 300)")
    p.add_argument("--inner-steps", type=int, default=16, help="Adam steps per image per update (default 16)")
    p.add_argument("--meta-batch", type=int, default=32, help="images per update (default 32)")
    p.add_argument("--inner-lr", type=float, default=1e-3, help="inner Adam rate: the encode --lr (default 1e-3)")
    p.add_argument("--outer-lr", type=float, default=1.0, help="Reptile step, decayed to 0 (default 1.0)")
    p.add_argument("--max-hidden-weight", type=float, default=4.0, help="keep hidden weight matrices within "
                   "this multiple of SIREN's init bound, so fits from the init stay 8-bit-quantizable "
                   "(default 4; 0: no limit)")
    p.add_argument("--validate", type=int, help="hold out the last N training images (never meta-trained "
                   "on) to choose the --lr and --steps that fits from the init use by default (init_tuning.py; "
                   "default: 32, or a quarter of a smaller source; 0: no recommendation)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    p.add_argument("--download", action="store_true", help="let torchvision download a named dataset")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args) -> int:
    out = Path(args.output)
    if out.suffix != ".safetensors":
        raise UserError(f"{out}: the init file must end in .safetensors")
    if out.exists() and not args.overwrite:
        raise UserError(f"{out}: already exists (pass --overwrite to replace it)")
    if not out.parent.is_dir():
        raise UserError(f"{out}: folder {out.parent} does not exist")
    Arch.parse(args.arch, 3, args.w0)  # a nonsense --arch fails before any image is read
    if args.validate is not None and args.validate < 0:
        raise UserError(f"--validate must be >= 0, got {args.validate}")
    cfg = MetaConfig(outer_steps=args.outer_steps, inner_steps=args.inner_steps, meta_batch=args.meta_batch,
                     inner_lr=args.inner_lr, outer_lr=args.outer_lr, seed=args.seed,
                     max_hidden_weight=args.max_hidden_weight)
    device = resolve_device(args.device)
    data = load_source(args.source, parse_size(args.size), args.split, args.download, False, args.limit, args.seed)
    arch = Arch.parse(args.arch, data.images.shape[1], args.w0)
    _, _, height, width = data.images.shape
    if args.validate is None:
        args.validate = min(32, len(data) // 4)
    if args.validate and args.validate >= len(data):
        raise UserError(f"--validate {args.validate}: the source has only {len(data)} images; hold out fewer")
    train, held_out = data.images[: len(data) - args.validate], data.images[len(data) - args.validate :]
    began = time.perf_counter()
    params, curve = meta_learn(train, arch, cfg, device, progress=not args.quiet)
    info = {"source": data.source, "split": args.split, "images": len(train), "config": config_json(cfg),
            "inner_psnr_first": round(curve[0], 3), "inner_psnr_last": round(curve[-1], 3),
            "seconds": round(time.perf_counter() - began, 1), "device": str(device),
            "command": command_line(args)}
    if args.validate:
        info["fit"] = recommend_fit(held_out, arch, params, device=device, progress=not args.quiet)
        info["fit"]["held_out"] = f"the last {args.validate} images of {data.source} (not meta-trained on)"
    init = LearnedInit(params, arch, height, width, info)
    size = save_init(out, init)
    print(f"wrote {out}: learned init for {arch.name} at {height}x{width} ({arch.channels} channel(s)), "
          f"{size} bytes, from {len(train)} images of {data.source}; inner-loop PSNR "
          f"{curve[0]:.2f} -> {curve[-1]:.2f} dB after {cfg.inner_steps} steps")
    if args.validate:
        fit = info["fit"]
        print(f"  fits from it: --lr {fit['lr']:g} --steps {fit['steps']} (the default for encode --init), chosen "
              f"on {args.validate} held-out images: median {fit['median_steps_to_reference']} steps to the PSNR "
              f"a random init reaches in {fit['reference']['steps']} ({fit['speedup_vs_reference']}x fewer), "
              f"mean {fit['psnr_mean']:.2f} dB against {fit['reference']['psnr_mean']:.2f} "
              f"({fit['psnr_8bit_mean']:.2f} against {fit['reference']['psnr_8bit_mean']:.2f} with 8-bit hidden layers)")
    return 0


def command_line(args) -> str:
    """The command that reproduces this init (every setting spelled out), for its header."""
    parts = ["rapidinr", "meta-init", args.source, "-o", args.output, "--arch", args.arch, "--w0", str(args.w0)]
    if args.size:
        parts += ["--size", args.size]
    if args.split != "train":
        parts += ["--split", args.split]
    if args.limit is not None:
        parts += ["--limit", str(args.limit)]
    parts += ["--outer-steps", str(args.outer_steps), "--inner-steps", str(args.inner_steps),
              "--meta-batch", str(args.meta_batch), "--inner-lr", str(args.inner_lr),
              "--outer-lr", str(args.outer_lr), "--max-hidden-weight", str(args.max_hidden_weight),
              "--validate", str(args.validate), "--seed", str(args.seed)]
    return " ".join(shlex.quote(part) for part in parts)
