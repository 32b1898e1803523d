"""`rapidinr encode`: fit one SIREN per image of a source and write a .rinr file."""
from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

from rapidinr.codec.prune import PruneConfig, check_ratio, parse_schedule
from rapidinr.codec.quantize import QuantConfig
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.devices import resolve_device
from rapidinr.core.distributed import from_env
from rapidinr.core.errors import UserError
from rapidinr.encoding.compress import CompressConfig, preset
from rapidinr.encoding.learned_init import fit_settings, resolve_init
from rapidinr.encoding.runner import MAX_SEED, check_memory, device_chunking, encode_file
from rapidinr.encoding.sharded import encode_sharded
from rapidinr.sources.datasets import load_source, parse_size


def add(sub):
    p = sub.add_parser("encode", help="fit one SIREN per image and write a .rinr file")
    p.add_argument("source", help="a folder of images or a named source (default, samples, "
                   "samples-crops, kodak:DIR, kodak/F@A-B:DIR (photos kodimA..kodimB shrunk F times), "
                   "cifar10-folder:DIR, cifar10:ROOT, flowers102:ROOT, fashion-mnist:ROOT, imagefolder:ROOT)")
    p.add_argument("-o", "--output", required=True, help="the .rinr file to write")
    p.add_argument("--arch", default="3x15", help="LAYERSxHIDDEN, e.g. 3x15 (default)")
    p.add_argument("--w0", type=float, default=30.0, help="SIREN frequency (default 30)")
    p.add_argument("--size", help="resize every image to HxW (antialiased)")
    p.add_argument("--steps", type=int, help="Adam steps per image (default 2000, or the learned init's "
                   "recommendation)")
    p.add_argument("--lr", type=float, help="peak learning rate (default 1e-3, or the learned init's "
                   "recommendation)")
    p.add_argument("--target-psnr", type=float, help="stop an image once it reaches this PSNR (dB)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    p.add_argument("--batch-size", type=int, help="images fitted at once (default: from --memory-mb)")
    p.add_argument("--memory-mb", type=float, default=None, help="working memory per chunk (default: half the "
                   "free memory of a CUDA device, else 1024)")
    p.add_argument("--precision", default="fp32", help="the fit's matmuls: fp32 (default) or tf32 (a CUDA "
                   "GPU's tensor cores; within 0.1 dB of fp32 in benchmarks/precision.py; the CPU computes "
                   "float32 either way)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="train", help="train or test (named datasets)")
    p.add_argument("--limit", type=int, help="encode only the first N images")
    p.add_argument("--download", action="store_true", help="let torchvision download a named dataset")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images and list them")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last chunk")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_compression_options(p)
    add_init_option(p)
    p.set_defaults(run=run)


def run(args) -> int:
    out = Path(args.output)
    if out.suffix != ".rinr":
        raise UserError(f"{out}: the output must end in .rinr")
    if out.exists() and not (args.overwrite or args.resume):
        raise UserError(f"{out}: already exists (pass --overwrite to replace it)")
    if args.memory_mb is not None and not (math.isfinite(args.memory_mb) and args.memory_mb > 0):
        raise UserError(f"--memory-mb: expected a finite number of MiB above 0, got {args.memory_mb:g}")
    if not 0 <= args.seed <= MAX_SEED:
        raise UserError(f"--seed: expected an integer 0..{MAX_SEED}, got {args.seed}")
    cfg = FitConfig(**fit_settings(None, args.steps, args.lr), target_psnr=args.target_psnr, seed=args.seed,
                    chunk_size=args.batch_size, precision=args.precision,
                    **({"memory_budget_mb": args.memory_mb} if args.memory_mb is not None else {}))
    arch_text = args.arch
    rgb = Arch.parse(arch_text, 3, args.w0)  # a nonsense --arch fails before any image is read
    if args.size is not None:  # a --size too large for --memory-mb fails before any image is read
        check_memory(rgb, *parse_size(args.size), cfg)
    compression = compression_config(args)  # bad compression options fail before any work too
    check_init_option(args)  # -- learned init: a missing --init file fails before any work --
    device = resolve_device(args.device)
    data = load_source(args.source, parse_size(args.size), args.split, args.download, args.skip_bad,
                       args.limit, args.seed)
    arch = Arch.parse(arch_text, data.images.shape[1], args.w0)
    for line in data.skipped:
        print(f"skipped {line}", file=sys.stderr)
    init = resolve_init_option(args, arch, data.images.shape)  # -- learned init (meta.py) --
    cfg = recommended_config(args, cfg, init)
    if args.memory_mb is None:  # on CUDA: chunks sized from the free device memory
        cfg = device_chunking(cfg, arch, data.images.shape[2] * data.images.shape[3], device)
    if _world_size() > 1:  # under torchrun: see the sharded-encode block at the end of this file
        return _run_sharded(args, data, arch, cfg, device, compression, out, init)
    info = encode_file(data, out, arch, cfg, device, resume=args.resume, overwrite=args.overwrite,
                       progress=not args.quiet, compression=compression, init=init, steps=cfg.steps, lr=cfg.lr)
    print(f"wrote {out}: {info['images']} images {info['height']}x{info['width']}, arch {arch.name}, "
          f"{info['bytes_per_image']:.0f} B/image ({info['bpp']:.2f} bpp), PSNR {info['psnr_mean']:.2f} dB"
          + (f", {len(data.skipped)} skipped" if data.skipped else ""))
    return 0


# -- compression options (paper Sec. IV: pruning rounds 2-3, layer-wise quantization; compress.py) --
def add_compression_options(p) -> None:
    g = p.add_argument_group("compression (paper Sec. IV; each round optional)")
    g.add_argument("--prune-l1", type=float, help="round 2: L1-prune this share of each image's weights, "
                   "then retrain (paper 0.2)")
    g.add_argument("--prune-l1-min-side", type=int, help="run round 2 only for images at least this many "
                   "pixels a side (the paper skips it for 32x32 CIFAR-10)")
    g.add_argument("--dynamic-prune", help="round 3: PSNR-to-ratio schedule, a preset (cifar10 = Eq. 2, "
                   "flowers102 / mini-imagenet = Eq. 3/4) or knots PSNR:RATIO,PSNR:RATIO,...")
    g.add_argument("--prune-scope", help="image (default): rank all of an image's weights together; "
                   "layer: prune each weight matrix by the ratio")
    g.add_argument("--retrain-steps", type=int, help="Adam steps after each pruning round (default 10000, the paper)")
    g.add_argument("--retrain-lr", type=float, help="retraining learning rate (default 2e-4, the paper)")
    g.add_argument("--quant-bits", type=int, help="quantize to 8 or 16 bits")
    g.add_argument("--quant-layers", help="hidden (default: first and last layers stay float32) or all")
    g.add_argument("--quant-bias-bits", type=int, help="biases of the quantized layers: 16 or 32 keeps them "
                   "finer than --quant-bits (default: --quant-bits)")
    g.add_argument("--quant-finetune-steps", type=int, help="quantization-aware fine-tuning steps (default 0)")
    g.add_argument("--lossless", help="zstd: a lossless stage over the compressed payload (default none)")
    g.add_argument("--preset", help="compact: the smallest store (every layer on its own grid, bits per layer "
                   "by rate-distortion, entropy-coded, relative to the --init learned init; the rate is set by "
                   "--arch and --rd-lambda); recorded in the file header (key preset)")
    g.add_argument("--compact-bits", type=int, help="compact store: one width for every layer (2..16) instead "
                   "of the rate-distortion allocation")
    g.add_argument("--rd-lambda", type=float, help="compact store: bits per weight one dB is worth in the bit "
                   "allocation (default 0.56; smaller: smaller files, lower PSNR)")
    g.add_argument("--init-relative", action="store_true", help="compact store: code each weight relative to "
                   "the --init learned init (the preset does whenever --init is learned or a file)")


def compression_config(args):
    """The CompressConfig the options ask for, or None; options that have nothing to act on are errors."""
    if Path(str(args.source)).suffix == ".rinr" and any(
            getattr(args, k) is not None for k in ("prune_l1", "dynamic_prune", "quant_bits", "retrain_steps")):
        raise UserError(f"{args.source}: compression runs while fitting; a .rinr file holds no images and no "
                        "masks to retrain: encode the images with these options")
    pruning = args.prune_l1 is not None or args.dynamic_prune is not None
    for option in ("retrain_steps", "retrain_lr", "prune_l1_min_side", "prune_scope"):
        if getattr(args, option) is not None and not pruning:
            raise UserError(f"--{option.replace('_', '-')}: no masks to retrain; add --prune-l1 or --dynamic-prune")
    for option in ("quant_layers", "quant_bias_bits", "quant_finetune_steps"):
        if getattr(args, option) is not None and args.quant_bits is None:
            raise UserError(f"--{option.replace('_', '-')}: needs --quant-bits 8 or 16")
    prune = None
    if pruning:
        defaults = PruneConfig()
        prune = PruneConfig(
            l1_ratio=check_ratio(args.prune_l1, "--prune-l1") if args.prune_l1 is not None else 0.0,
            l1_min_side=args.prune_l1_min_side if args.prune_l1_min_side is not None else 0,
            schedule=parse_schedule(args.dynamic_prune) if args.dynamic_prune is not None else None,
            scope=args.prune_scope or defaults.scope,
            retrain_steps=args.retrain_steps if args.retrain_steps is not None else defaults.retrain_steps,
            retrain_lr=args.retrain_lr if args.retrain_lr is not None else defaults.retrain_lr)
    quant = None
    if args.quant_bits is not None:
        quant = QuantConfig(bits=args.quant_bits, layers=args.quant_layers or "hidden",
                            bias_bits=args.quant_bias_bits, finetune_steps=args.quant_finetune_steps or 0)
    lossless = args.lossless
    if lossless not in (None, "none", "zstd"):
        raise UserError(f"--lossless: expected zstd or none, got {lossless!r}")
    config = CompressConfig(prune, quant, None if lossless in (None, "none") else lossless, compact_config(args))
    return config if config.active else None


def compact_config(args):
    """The CompactConfig --preset / --compact-bits / --rd-lambda ask for, or None."""
    if args.init_relative and args.init in (None, "random"):
        raise UserError("--init-relative: needs a learned init (--init learned or --init FILE)")
    if args.preset is None:
        if args.compact_bits is not None or args.rd_lambda is not None or args.init_relative:
            raise UserError("--compact-bits / --rd-lambda / --init-relative: need --preset compact")
        return None
    cfg = preset(args.preset)
    if args.compact_bits is not None:
        cfg = dataclasses.replace(cfg, bits=args.compact_bits)
    if args.rd_lambda is not None:
        cfg = dataclasses.replace(cfg, rd_lambda=args.rd_lambda)
    return cfg


# -- torchrun: one shard per rank, merged by rank 0 into one file (rapidinr.distributed) ----------
def _world_size() -> int:
    return from_env().world


def _run_sharded(args, data, arch, cfg, device, compression, out, init) -> int:
    if args.resume:
        raise UserError("--resume is not supported under torchrun (each rank writes its own shard)")
    info = encode_sharded(data.images, out, arch, cfg, device, data.labels, data.class_names, data.source,
                          overwrite=args.overwrite, progress=not args.quiet, learned_init=init, compression=compression)
    if from_env().is_main:
        print(f"wrote {out}: {info['images']} images from {from_env().world} shards, arch {arch.name}, "
              f"{info['bytes_per_image']:.0f} B/image, PSNR {info['psnr_mean']:.2f} dB")
    return 0


# -- learned initialization (meta.py; made by `rapidinr meta-init`) ---------------------------------
def add_init_option(p) -> None:
    p.add_argument("--init", default=None,
                   help="where every image's fit starts: random (SIREN init, default; under --preset compact: "
                   "the learned init that ships for this arch and size, where one does), learned (the "
                   "init that ships for this arch and size, e.g. the default dataset's 3x15 at 28x28; for "
                   "32x32 RGB the CIFAR-10 one, which measured best on photo crops too), learned:DATA (the "
                   "one meta-learned on DATA: cifar10, kodak or default; see data/INIT.md), or a file made "
                   "by `rapidinr meta-init`")


def check_init_option(args) -> None:
    spec = args.init
    if spec not in (None, "random", "learned") and not spec.startswith("learned:") and not Path(spec).is_file():
        raise UserError(f"--init: expected learned, learned:DATA, random or a learned-init file, got {spec!r} "
                        "(no such file)")


def recommended_config(args, cfg, init):
    """The learned init's recommended --lr / --steps (init_tuning.py) where the user gave none."""
    chosen = {k: v for k, v in fit_settings(init, args.steps, args.lr).items() if getattr(args, k) is None}
    if chosen and init is not None and init.recommended_fit and not args.quiet:
        print("learned init: fitting with its recommended " + " ".join(f"--{k} {v:g}" for k, v in chosen.items())
              + " (chosen on held-out images; pass --lr / --steps to override)", file=sys.stderr)
    return dataclasses.replace(cfg, **chosen)


def resolve_init_option(args, arch, shape):
    """The LearnedInit for --init (None for random); a mismatch of arch or size is a clear error."""
    if args.init is None:  # the default: random; the compact preset starts from a shipped learned init if one fits
        try:
            return resolve_init("learned", arch, int(shape[2]), int(shape[3])) if args.preset else None
        except UserError:
            return None
    return resolve_init(args.init, arch, int(shape[2]), int(shape[3]))
