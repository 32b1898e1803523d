"""`rapidinr encode`: fit one SIREN per image of a source and write a .rinr file."""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import UserError


def add(sub):
    p = sub.add_parser("encode", help="fit one SIREN per image and write a .rinr file")
    p.add_argument("source", help="a folder of images or a named source (default, samples, "
                   "samples-crops, cifar10:ROOT, flowers102:ROOT, fashion-mnist:ROOT, imagefolder:ROOT)")
    p.add_argument("-o", "--output", required=True, help="the .rinr file to write")
    p.add_argument("--arch", default="3x15", help="LAYERSxHIDDEN, e.g. 3x15 (default)")
    p.add_argument("--w0", type=float, default=30.0, help="SIREN frequency (default 30)")
    p.add_argument("--size", help="resize every image to HxW (antialiased)")
    p.add_argument("--steps", type=int, default=2000, help="Adam steps per image (default 2000)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    p.add_argument("--target-psnr", type=float, help="stop an image once it reaches this PSNR (dB)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    p.add_argument("--batch-size", type=int, help="images fitted at once (default: from --memory-mb)")
    p.add_argument("--memory-mb", type=float, default=1024, help="working memory per chunk (default 1024)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="train", help="train or test (named datasets)")
    p.add_argument("--limit", type=int, help="encode only the first N images")
    p.add_argument("--download", action="store_true", help="let torchvision download a named dataset")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images and list them")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last chunk")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..config import Arch, FitConfig
    from ..data import load_source, parse_size
    from ..encoder import encode_to_file, resolve_device

    out = Path(args.output)
    if out.suffix != ".rinr":
        raise UserError(f"{out}: the output must end in .rinr")
    if out.exists() and not (args.overwrite or args.resume):
        raise UserError(f"{out}: already exists (pass --overwrite to replace it)")
    cfg = FitConfig(steps=args.steps, lr=args.lr, target_psnr=args.target_psnr, seed=args.seed,
                    chunk_size=args.batch_size, memory_budget_mb=args.memory_mb)
    arch_text = args.arch
    Arch.parse(arch_text, 3, args.w0)  # a nonsense --arch fails before any image is read
    device = resolve_device(args.device)
    data = load_source(args.source, parse_size(args.size), args.split, args.download, args.skip_bad,
                       args.limit, args.seed)
    arch = Arch.parse(arch_text, data.images.shape[1], args.w0)
    for line in data.skipped:
        print(f"skipped {line}", file=sys.stderr)
    inrs = encode_to_file(data.images, out, arch, cfg, device, data.labels, data.class_names, data.source,
                          resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    info = inrs.info()
    print(f"wrote {out}: {info['images']} images {info['height']}x{info['width']}, arch {arch.name}, "
          f"{info['bytes_per_image']:.0f} B/image ({info['bpp']:.2f} bpp), PSNR {info['psnr_mean']:.2f} dB"
          + (f", {len(data.skipped)} skipped" if data.skipped else ""))
    return 0


