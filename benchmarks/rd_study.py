"""Rate–distortion study (issue 12): Rapid-INR among the field's codecs, on Kodak-derived crops.

One command runs ``rapidinr.study.rd.sweep`` with the byte-cap protocol on 64 random 32×32 crops
of the 24 Kodak photos downscaled 4× (``kodak/4:DIR``: 192×128 photos, portrait ones turned to
landscape; crops taken from each photo in turn at seeded random positions, seed 0); SIRENs 2x12,
3x15 and 3x20 (one rate point each), 1000 Adam steps at 1e-3, the ``cifar10`` dynamic-pruning
schedule with 250 retraining steps per round; codecs jpeg, jpeg-opt, webp, avif, jp2, jxl,
jpeg-opt-x2, webp-x2. INR variants: the paper's (fp32, pruned, 16-bit, 8-bit, ...) and the
``encode --preset compact`` store (``INR compact`` on the shared fit; ``INR compact, learned init``
from the learned init that ships for the arch at this size, 3x15 and 3x20 at 32×32; no
``--no-compact``). It prints:
- per cap (320, 480, 640, 900, 1200 B/image; scaled by the pixel count at other sizes) every
  classical codec (mean PSNR, mean real bytes, or "unmet") and every INR variant (its largest
  architecture whose bytes per image fit the cap);
- BD-rate and BD-PSNR of the best INR variant (lowest BD-rate against optimized JPEG) against
  optimized JPEG, WebP and the envelope;
- the INR variants' bytes per image on 32 CIFAR-10 test images (the JPEG-q75 files of
  ../shared/data/cifar10-jpeg75: bytes only, never PSNR against published lossless numbers).

    python benchmarks/rd_study.py                 # 32×32, CPU-sized (minutes)
    python benchmarks/rd_study.py --size 64 --crops 24 --archs 3x16,4x24,5x32 --steps 800 --retrain-steps 200
    python benchmarks/rd_study.py --size 128 --crops 10 --archs 3x32,4x40,5x48 --steps 500 \
        --retrain-steps 150   # caps ×16: 36 min wall (8 min of CPU) on this 2-core machine at load ~6
    python benchmarks/rd_study.py --kodak-full 1 --full-steps 100   # full-size Kodak, CPU quick mode

``--kodak-full N`` fits the first N full-resolution Kodak photos (768×512) with a COIN-sized SIREN
(10x28, COIN's ~0.3 bpp Kodak setting at 16 bits; no pruning), sets the classical codecs over
their quality range beside it, and draws both with the published Kodak curves (COIN, COIN++,
Strümpler et al., C3, COOL-CHICv2, RECOMBINER, BPG, VTM, JPEG, JPEG2000; labelled "published:
NAME", from ``rapidinr.study.anchors``) in rd-study-kodak-full-<device>.png. Our curves are
labelled with the run ("this CPU, quick: 1 image, 100 steps"): on a CPU it only shows the path
works, far from converged. On a GPU, all 24 images at COIN's step count, one command:

    python benchmarks/rd_study.py --kodak-full 24 --full-steps 50000 --device cuda

(lr 2e-4 from 10,000 steps on, as COIN; chunks sized from the free GPU memory). It is not part of
benchmarks/gpu_check.py: 24 full-size fits of 50,000 steps (~2e16 FLOP, about 17 minutes at a
sustained 20 TFLOP/s; an estimate, never run) do not fit that script's 8 minutes.

Kodak is read from ../shared/data/kodak (override with --kodak). Crops are not the Kodak set: the
published Kodak curves (768×512) are not drawn beside them. Writes
benchmarks/results/rd-study-<size>-<device>.json (settings, hardware, versions, every number; the
crops, archs and steps chosen in ``study``) and its figure rd-study-<size>-<device>.png.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from rapidinr.codec.prune import PRESETS, PruneConfig
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.devices import resolve_device
from rapidinr.core.results import write_results
from rapidinr.encoding.runner import device_chunking
from rapidinr.sources.datasets import load_source
from rapidinr.study import plot_rd
from rapidinr.study.rd import ENVELOPE, RDConfig, cap_table, sweep

RESULTS = Path(__file__).parent / "results"
# ../shared/data/kodak from the project root (or from the folder above, for a git worktree)
KODAK = next((d for d in (Path(__file__).resolve().parents[k] / "shared" / "data" / "kodak" for k in (2, 3))
              if d.is_dir()), Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak")
CODECS = ("jpeg", "jpeg-opt", "webp", "avif", "jp2", "jxl", "jpeg-opt-x2", "webp-x2")
FULL_CODECS = ("jpeg-opt", "webp", "avif", "jp2")  # full-size Kodak: over each codec's quality range
GPU_COMMAND = "python benchmarks/rd_study.py --kodak-full 24 --full-steps 50000 --device cuda"
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
    inr_cfg = RDConfig(archs=cfg.archs, fit=cfg.fit, prune=cfg.prune, qualities=(50,), downscale=(2,),
                       compact=cfg.compact)
    doc = sweep(images, inr_cfg, device, progress=False, source="cifar10-folder:test")
    variants = {k: {"arch": v["arch"], "bytes": v["bytes"], "sparsity": v["sparsity"]}
                for k, v in doc["results"].items() if k.startswith("INR")}
    return {"images": int(images.shape[0]), "source": "cifar10-jpeg75 test split, every "
            f"{step}th image", "seconds": doc["seconds"], "variants": variants}


def run_label(device, images: int, steps: int) -> str:
    """What a full-size Kodak run was, for its curves' labels: "this CPU, quick: 1 image, 100 steps"
    on a CPU (not a converged run), "cuda: 24 images, 50000 steps" on a GPU."""
    kind = torch.device(device).type
    where = "this CPU, quick" if kind == "cpu" else kind
    return f"{where}: {images} image{'s' if images != 1 else ''}, {steps} step{'s' if steps != 1 else ''}"


KODAK_FULL_VARIANTS = ("INR fp32", "INR 16-bit", "INR 8-bit layer-wise", "INR compact", *FULL_CODECS, "published")


def kodak_figure(doc: dict, label: str):
    """Our full-size Kodak curves, each labelled with ``label`` (how many images and steps, on
    what), beside the published Kodak curves (labelled "published: NAME"; only Kodak's)."""
    ours = [name for name in doc["results"] if name in KODAK_FULL_VARIANTS]
    fig = plot_rd(doc, "bpp", [*ours, "published"], title=f"Kodak 768x512: ours ({label}) beside the published "
                  "Kodak curves (24 images)", label_suffix=f" ({label})")
    fig.set_size_inches(10.5, 5.2)
    ax = fig.axes[0]
    ax.set_xlim(0, 2.0)  # the published curves' range (BPG and VTM go on to 10 bpp)
    shown = [y for line in ax.get_lines() for x, y in zip(line.get_xdata(), line.get_ydata()) if x <= 2.0]
    if shown:
        ax.set_ylim(min(shown) - 1, max(shown) + 1)
    ax.title.set_fontsize(9)
    ax.legend(fontsize=6.5, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig


def kodak_full(args, device) -> int:
    """Full-size Kodak beside the published Kodak curves (the same dataset, so they are drawn)."""
    data = load_source(f"kodak:{args.kodak}", limit=args.kodak_full)
    _, c, h, w = data.images.shape
    steps = args.full_steps
    fit_cfg = FitConfig(steps=steps, lr=2e-4 if steps >= 10000 else 1e-3)
    fit_cfg = device_chunking(fit_cfg, Arch.parse(args.full_arch, c), h * w, device)  # CUDA: chunk by free memory
    cfg = RDConfig(archs=(args.full_arch,), fit=fit_cfg, prune=PruneConfig(schedule=None),
                   qualities=(10, 30, 50, 70, 90), downscale=(2,), codecs=FULL_CODECS, protocol="quality",
                   codec_points=6, anchors="kodak", compact=None if args.no_compact else "compact")
    doc = sweep(data.images, cfg, device, progress=True, source=data.source.replace(str(args.kodak), "KODAK"))
    label = run_label(device, len(data), steps)
    doc["run"] = {"label": label, "images": len(data), "steps": steps, "arch": args.full_arch,
                  "converged": False if torch.device(device).type == "cpu" else None,
                  "gpu_command": GPU_COMMAND}
    print(f"{len(data)} full-size Kodak photos, {args.full_arch} SIREN, {steps} steps ({label}):")
    for name, e in doc["results"].items():
        if name.startswith("INR") or name in cfg.codecs:
            print(f"  {name:<44} " + ", ".join(f"{b:.3f} bpp {p:.2f} dB" for b, p in zip(e["bpp"], e["psnr"])))
    print("published (Kodak, 24 images), for reference:")
    for name, e in doc["published"].items():
        print(f"  {name:<52} " + ", ".join(f"{b:.3f}:{p:.1f}" for b, p in zip(e["bpp"][:4], e["psnr"][:4])))
    stem = f"rd-study-kodak-full-{torch.device(device).type}"
    out = write_results(Path(args.results) / f"{stem}.json", doc)
    figure = Path(args.results) / f"{stem}.png"
    kodak_figure(doc, label).savefig(figure, dpi=110)
    print(f"{doc['seconds']:.0f} s; wrote {out} and {figure}")
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
    p.add_argument("--full-arch", default="10x28", help="--kodak-full SIREN (default 10x28, COIN's ~0.3 bpp)")
    p.add_argument("--results", default=str(RESULTS), help="folder for the results JSON and figure")
    p.add_argument("--no-compact", action="store_true", help="leave out the compact preset's variants")
    p.add_argument("--why", default="", help="a note on the chosen crops/archs/steps, kept in the JSON (study.why)")
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
                   codecs=CODECS, protocol="cap", caps=caps, compact=None if args.no_compact else "compact")
    doc = sweep(data.images, cfg, device, progress=True, source=data.source.replace(str(args.kodak), "KODAK"))
    doc["study"] = {"crops": args.crops, "size": args.size, "downscale": args.downscale, "archs": args.archs,
                    "steps": args.steps, "retrain_steps": args.retrain_steps, "caps_scale": scale,
                    "why": args.why}
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
    stem = f"rd-study-{args.size}x{args.size}-{torch.device(device).type}"
    out = write_results(Path(args.results) / f"{stem}.json", doc)
    figure = write_figure(doc, Path(args.results) / f"{stem}.png", f"{len(data)} Kodak crops {args.size}x{args.size} "
                          f"(downscaled {args.downscale}x): the INR among the field's codecs")
    print(f"{doc['seconds']:.0f} s; wrote {out} and {figure}")
    return 0


FIGURE_VARIANTS = ("INR 8-bit layer-wise", "INR 8-bit all layers", "INR compact", "INR compact, learned init",
                   "JPEG downsampled x2", *CODECS, ENVELOPE)


def write_figure(doc: dict, path: Path, title: str, x: str = "bytes", variants=FIGURE_VARIANTS,
                 log_x: bool = True) -> Path:
    """The study's figure (``plot_rd`` over its results: PSNR against real bytes per image, log x)."""
    fig = plot_rd(doc, x, list(variants), title=title, log_x=log_x)
    fig.set_size_inches(7.2, 5.0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


if __name__ == "__main__":
    sys.exit(main())
