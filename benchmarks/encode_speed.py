"""Encode speed: the batched encoder against the paper's one-image-at-a-time loop (issues 2 and 7).

Fits the same 32×32 crops of real photos (``rapidinr.sources.datasets.load_sample_crops``) with a 3x15 SIREN
for the same number of steps, in one run,
  (a) batched: ``rapidinr.encoding.fit.fit``, all images at once over stacked weights;
  (b) per image: ``rapidinr.study.reference.fit_loop``, one nn.Module of nn.Linear + sine layers and one
      torch.optim.Adam per image with a cosine schedule, autograd backward: the paper's code.
Both start from the same SIREN init (seed + image index) with the same FitConfig, so they compute
the same thing (tests/test_fit_equivalence.py) and must reach the same PSNR.

The loop over all 256 images × 2000 steps would take most of an hour on this CPU, so it fits the
first ``--loop-images`` images only; PSNR is compared on that same subset and the output says so.
Rates are reported per wall second and per CPU second of this process (``time.process_time``):
on a machine shared with other jobs, CPU seconds are the steadier measure of the work each path
needs; with ``--threads 1`` (default) both paths run on one core.

    python benchmarks/encode_speed.py                   # 256 images, 2000 steps, loop on 16
    python benchmarks/encode_speed.py --threads 2       # torch's two threads for both paths
    python benchmarks/encode_speed.py --quick           # seconds: a smoke test

Writes benchmarks/results/encode_speed-cpu.json (settings, hardware, versions, all numbers).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from rapidinr.codec.measure import measure_weights
from rapidinr.core import siren
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.cputime import timed
from rapidinr.core.results import results_document, write_results
from rapidinr.encoding.fit import fit
from rapidinr.sources.datasets import load_sample_crops, parse_size
from rapidinr.study.reference import fit_loop

RESULTS = Path(__file__).parent / "results"
RECORD_AT = (500, 1000, 2000)  # PSNR reported after these many steps (those within --steps)


def run_batched(images, arch, cfg, record_at):
    traces = {t: torch.full((images.shape[0],), float("nan")) for t in record_at}

    def on_check(step, rows, train_psnr):
        if step in traces:
            traces[step][rows.cpu()] = train_psnr.float().cpu()

    result, wall, cpu = timed(lambda: fit(images, arch, cfg, progress=False, on_check=on_check))
    return result.params, traces, wall, cpu


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256, help="crops fitted by the batched encoder")
    parser.add_argument("--loop-images", type=int, default=16, help="of those, fitted by the per-image loop")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--size", default="32x32")
    parser.add_argument("--arch", default="3x15")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both paths (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="crop positions and SIREN init")
    parser.add_argument("--quick", action="store_true", help="8 images, loop on 2, 60 steps (a smoke test)")
    parser.add_argument("--out", default=str(RESULTS / "encode_speed-cpu.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.loop_images, args.steps = 8, 2, 60
    torch.set_num_threads(args.threads)
    size = parse_size(args.size)
    images = load_sample_crops(args.images, size, seed=args.seed).images  # (N, 3, H, W) uint8
    arch = Arch.parse(args.arch, images.shape[1])
    loop_n = min(args.loop_images, args.images)
    record_at = tuple(t for t in RECORD_AT if t <= args.steps) or (args.steps,)
    cfg = FitConfig(steps=args.steps, lr=args.lr, seed=args.seed, check_every=20 if args.quick else 25)
    print(f"encode speed: {args.images} crops {size[0]}x{size[1]} of real photos, arch {arch.name} "
          f"({arch.n_params} params), {args.steps} Adam steps, lr {args.lr}, {torch.get_num_threads()} thread(s)")

    params, traces, b_wall, b_cpu = run_batched(images, arch, cfg, record_at)
    b_psnr = measure_weights(params, arch, images)
    loop, l_wall, l_cpu = timed(lambda: fit_loop(images[:loop_n], arch, cfg, record_at=record_at))
    l_psnr = measure_weights(loop.params, arch, images[:loop_n])

    n, steps = args.images, args.steps
    rows = {
        "batched": {"images": n, "wall_s": b_wall, "cpu_s": b_cpu,
                    "images_per_s": n / b_wall, "image_steps_per_s": n * steps / b_wall,
                    "images_per_cpu_s": n / b_cpu, "image_steps_per_cpu_s": n * steps / b_cpu,
                    "psnr_all": float(b_psnr.mean()), "psnr_subset": float(b_psnr[:loop_n].mean()),
                    "train_psnr_at_subset": {t: float(v[:loop_n].mean()) for t, v in traces.items()},
                    "train_psnr_at_all": {t: float(v.mean()) for t, v in traces.items()}},
        "per_image_loop": {"images": loop_n, "wall_s": l_wall, "cpu_s": l_cpu,
                           "images_per_s": loop_n / l_wall, "image_steps_per_s": loop_n * steps / l_wall,
                           "images_per_cpu_s": loop_n / l_cpu, "image_steps_per_cpu_s": loop_n * steps / l_cpu,
                           "psnr_subset": float(l_psnr.mean()),
                           "train_psnr_at_subset": {t: float(v.mean()) for t, v in loop.psnr_at.items()}},
    }
    b, l = rows["batched"], rows["per_image_loop"]
    speedup_wall = b["images_per_s"] / l["images_per_s"]
    speedup_cpu = b["images_per_cpu_s"] / l["images_per_cpu_s"]
    psnr_gap = b["psnr_subset"] - l["psnr_subset"]

    print(f"\n{'':16s}{'images':>8s}{'img/s':>10s}{'steps/s':>11s}{'img/cpu-s':>11s}{'steps/cpu-s':>13s}"
          f"{'PSNR dB':>9s}" + "".join(f"{'@' + str(t):>8s}" for t in record_at))
    for name, r in (("batched (all)", b), ("batched (subset)", None), ("per-image loop", l)):
        if r is None:
            print(f"{name:16s}{loop_n:8d}{'':54s}{b['psnr_subset']:9.2f}"
                  + "".join(f"{b['train_psnr_at_subset'][t]:8.2f}" for t in record_at))
            continue
        at = r.get("train_psnr_at_all", r["train_psnr_at_subset"])
        print(f"{name:16s}{r['images']:8d}{r['images_per_s']:10.2f}{r['image_steps_per_s']:11.0f}"
              f"{r['images_per_cpu_s']:11.2f}{r['image_steps_per_cpu_s']:13.0f}"
              f"{r.get('psnr_all', r['psnr_subset']):9.2f}" + "".join(f"{at[t]:8.2f}" for t in record_at))
    print(f"\nspeed-up of the batched encoder: {speedup_wall:.1f}x per wall second, {speedup_cpu:.1f}x per CPU second")
    print(f"PSNR on the same {loop_n} images: batched {b['psnr_subset']:.2f} dB, per-image loop "
          f"{l['psnr_subset']:.2f} dB (difference {psnr_gap:+.3f} dB; the loop fitted only these {loop_n} "
          f"of the {n} images)")
    print("(@N: mean training PSNR after N steps, float output; PSNR dB: decoded, 8-bit rounded)")

    settings = {"images": n, "loop_images": loop_n, "steps": steps, "size": list(size), "arch": arch.name,
                "lr": args.lr, "threads": torch.get_num_threads(), "seed": args.seed,
                "source": f"load_sample_crops({n}, {size}, seed={args.seed})",
                "micro_batch_cpu": siren.micro_batch_for(arch, size[0] * size[1], n, "cpu")}
    results = {**rows, "speedup_wall": speedup_wall, "speedup_cpu": speedup_cpu,
               "psnr_difference_db": psnr_gap}
    document = results_document("encode_speed", "batched fit vs the paper's per-image nn.Module loop, "
                                "same crops, same steps, one run", settings, results)
    path = write_results(args.out, document)
    print(f"wrote {path}")
    return document


if __name__ == "__main__":
    main()
