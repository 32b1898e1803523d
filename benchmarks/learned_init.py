"""Learned against random initialization, on held-back images of the same kind (issue 7).

The learned init (``rapidinr meta-init``, Reptile; ``rapidinr/meta.py``) was trained on a dataset's
training split; every number here is measured on images it never saw: the embedded
Fashion-MNIST test split (default), or photo crops at other positions (``--source samples-crops``:
the init is meta-learned here from crops of seed 0 and measured on crops of seed 1).

For each held-back image i, with the same FitConfig (``--steps`` with its cosine schedule, lr):
- random init: R_i = its PSNR after ``--steps`` (2000) steps;
- learned init: the first step at which it reaches R_i (checked every ``--check-every`` steps),
  and its PSNR after all ``--steps``;
- learned init with a short schedule of ``--short-steps`` steps: how many reach R_i;
- end to end: images/s of an encode with ``target_psnr`` = the median R_i (early stopping and
  batch compaction on), random against learned, in the same run.

    python benchmarks/learned_init.py                       # shipped init, 64 test images
    python benchmarks/learned_init.py --source samples-crops --images 32
    python benchmarks/learned_init.py --learned-lr 3e-3       # the learned init at a higher rate
    python benchmarks/learned_init.py --quick               # a smoke test

Writes benchmarks/results/learned_init-cpu.json.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from rapidinr import siren
from rapidinr.bench import results_document, write_results
from rapidinr.config import Arch, FitConfig
from rapidinr.data import load_default, load_sample_crops
from rapidinr.fit import fit
from rapidinr.meta import MetaConfig, load_init, meta_learn
from rapidinr.metrics import psnr

RESULTS = Path(__file__).parent / "results"
DEFAULT_INIT = Path(__file__).resolve().parent.parent / "data" / "init-default-3x15-28x28.safetensors"


def decoded_psnr(images, params, arch):
    h, w = images.shape[-2:]
    with torch.no_grad():
        out = siren.forward(params, arch, siren.coordinate_grid(h, w))  # (N, HW, C)
    return psnr(images, out.add(1).mul(0.5).clamp(0, 1).permute(0, 2, 1).reshape(images.shape))


def traced_fit(images, arch, cfg, init):
    """Fit and record each image's training PSNR at every check. Returns (result, {i: {step: psnr}}, wall, cpu)."""
    trace: dict[int, dict[int, float]] = {}

    def on_check(step, rows, values):
        for row, value in zip(rows.tolist(), values.tolist()):
            trace.setdefault(row, {})[step] = value

    wall, cpu = time.perf_counter(), time.process_time()
    result = fit(images, arch, cfg, init=init, progress=False, on_check=on_check)
    return result, trace, time.perf_counter() - wall, time.process_time() - cpu


def first_reaching(trace_i: dict[int, float], target: float) -> float:
    hits = [step for step in sorted(trace_i) if trace_i[step] >= target]
    return float(hits[0]) if hits else float("inf")


def timed_encode(images, arch, cfg, init):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fit(images, arch, cfg, init=init, progress=False)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=["default", "samples-crops"], default="default")
    parser.add_argument("--init", help="a learned-init file (default: the shipped default init for "
                        "--source default; meta-learned here for samples-crops)")
    parser.add_argument("--images", type=int, default=64, help="held-back images measured")
    parser.add_argument("--steps", type=int, default=2000, help="the random init's budget (2000)")
    parser.add_argument("--short-steps", type=int, default=200, help="the learned init's short schedule")
    parser.add_argument("--lr", type=float, default=1e-3, help="fit rate (random init; learned too by default)")
    parser.add_argument("--learned-lr", type=float, help="fit rate for the learned init (default --lr): "
                        "a fit that starts close tolerates a higher rate")
    parser.add_argument("--check-every", type=int, default=10, help="resolution of steps-to-target")
    parser.add_argument("--arch", default="3x15")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--outer-steps", type=int, default=300, help="meta-learning, when it runs here")
    parser.add_argument("--quick", action="store_true", help="8 images, 100 steps, tiny meta-learning")
    parser.add_argument("--out", default=str(RESULTS / "learned_init-cpu.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.steps, args.short_steps, args.outer_steps, args.check_every = 8, 100, 20, 10, 5
    torch.set_num_threads(args.threads)

    meta_seconds = None
    if args.source == "default":
        held_back = load_default("test").images[: args.images]  # (N, 1, 28, 28) the test split
        arch = Arch.parse(args.arch, 1)
        if args.init or not args.quick:
            path = Path(args.init) if args.init else DEFAULT_INIT
            learned = load_init(path)
            learned.check_fits(arch, 28, 28, path)
            init, init_from = learned.params, f"{path.name}: {learned.info.get('command', '')}"
        else:
            train = load_default("train").images[:256]
            began = time.perf_counter()
            init, _ = meta_learn(train, arch, MetaConfig(outer_steps=args.outer_steps), progress=False)
            meta_seconds = time.perf_counter() - began
            init_from = f"meta_learn(default:train[:256], outer_steps={args.outer_steps})"
    else:
        held_back = load_sample_crops(args.images, (32, 32), seed=1).images  # other positions
        arch = Arch.parse(args.arch, 3)
        if args.init:
            learned = load_init(args.init)
            learned.check_fits(arch, 32, 32, args.init)
            init, init_from = learned.params, str(args.init)
        else:
            train = load_sample_crops(512, (32, 32), seed=0).images
            began = time.perf_counter()
            init, _ = meta_learn(train, arch, MetaConfig(outer_steps=args.outer_steps), progress=False)
            meta_seconds = time.perf_counter() - began
            init_from = f"meta_learn(load_sample_crops(512, seed=0), outer_steps={args.outer_steps})"
    n = held_back.shape[0]
    learned_lr = args.learned_lr or args.lr
    print(f"learned vs random init: {n} held-back images ({args.source}), arch {arch.name}, lr {args.lr} "
          f"(learned init: {learned_lr}), "
          f"{torch.get_num_threads()} thread(s); init: {init_from}")

    cfg = FitConfig(steps=args.steps, lr=args.lr, check_every=args.check_every)
    rand, rand_trace, rand_wall, _ = traced_fit(held_back, arch, cfg, None)
    targets = torch.tensor([rand_trace[i][args.steps] for i in range(n)])  # R_i
    learn_cfg = FitConfig(steps=args.steps, lr=learned_lr, check_every=args.check_every)
    learn, learn_trace, learn_wall, _ = traced_fit(held_back, arch, learn_cfg, init)
    short_cfg = FitConfig(steps=args.short_steps, lr=learned_lr, check_every=args.check_every)
    short, short_trace, _, _ = traced_fit(held_back, arch, short_cfg, init)

    rand_steps = torch.tensor([first_reaching(rand_trace[i], targets[i]) for i in range(n)])
    learn_steps = torch.tensor([first_reaching(learn_trace[i], targets[i]) for i in range(n)])
    short_reached = sum(first_reaching(short_trace[i], targets[i]) < float("inf") for i in range(n))
    rand_final = decoded_psnr(held_back, rand.params, arch)
    learn_final = decoded_psnr(held_back, learn.params, arch)
    short_final = decoded_psnr(held_back, short.params, arch)
    median_ratio = float(rand_steps.median() / learn_steps.median())
    per_image_ratio = (rand_steps / learn_steps)  # inf-safe: unreached images give 0
    curve_at = [t for t in (10, 50, 100, 200, 500, 1000, 2000) if t <= args.steps and t % args.check_every == 0]

    def mean_at(trace, step):
        return float(torch.tensor([trace[i][step] for i in range(n) if step in trace[i]]).mean())

    # end to end: an encode that stops each image at the target (median R_i), random vs learned
    target = float(targets.median())
    stop_cfg = FitConfig(steps=args.steps, lr=args.lr, target_psnr=target, check_every=args.check_every)
    rand_stop, rand_stop_wall, rand_stop_cpu = timed_encode(held_back, arch, stop_cfg, None)
    learn_stop, learn_stop_wall, learn_stop_cpu = timed_encode(
        held_back, arch, FitConfig(steps=args.steps, lr=learned_lr, target_psnr=target,
                                   check_every=args.check_every), init)
    rand_ok = int((rand_stop.train_psnr >= target).sum())
    learn_ok = int((learn_stop.train_psnr >= target).sum())

    print(f"\nsteps to R_i (each image's PSNR after {args.steps} steps from the random init, "
          f"mean {targets.mean():.2f} dB), same {args.steps}-step schedule:")
    print(f"  random : median {rand_steps.median():.0f} steps")
    print(f"  learned: median {learn_steps.median():.0f} steps, reached by {int(torch.isfinite(learn_steps).sum())}/{n}"
          f"  -> {median_ratio:.1f}x fewer steps (median of per-image ratios "
          f"{per_image_ratio.median():.1f}x; target 10x)")
    print(f"  learned with a {args.short_steps}-step schedule: {short_reached}/{n} reach R_i, "
          f"PSNR {short_final.mean():.2f} dB")
    print(f"final PSNR after {args.steps} steps (decoded, 8-bit): random {rand_final.mean():.2f} dB, "
          f"learned {learn_final.mean():.2f} dB ({learn_final.mean() - rand_final.mean():+.2f} dB)")
    print("mean training PSNR by step:  " + "  ".join(f"@{t}" for t in curve_at))
    print("  random : " + "  ".join(f"{mean_at(rand_trace, t):.2f}" for t in curve_at))
    print("  learned: " + "  ".join(f"{mean_at(learn_trace, t):.2f}" for t in curve_at))
    print(f"end to end to {target:.2f} dB (median R_i; early stop + compaction, at most {args.steps} steps):")
    print(f"  random : {n / rand_stop_wall:.2f} images/s wall, {n / rand_stop_cpu:.2f} per CPU s, "
          f"{rand_stop.image_steps} image-steps, {rand_ok}/{n} reached")
    print(f"  learned: {n / learn_stop_wall:.2f} images/s wall, {n / learn_stop_cpu:.2f} per CPU s, "
          f"{learn_stop.image_steps} image-steps, {learn_ok}/{n} reached")
    print(f"  -> {rand_stop_cpu / learn_stop_cpu:.1f}x images/s (CPU seconds), "
          f"{rand_stop_wall / learn_stop_wall:.1f}x (wall), "
          f"{rand_stop.image_steps / max(learn_stop.image_steps, 1):.1f}x fewer image-steps")

    settings = {"source": args.source, "images": n, "arch": arch.name, "steps": args.steps,
                "short_steps": args.short_steps, "lr": args.lr, "learned_lr": learned_lr,
                "check_every": args.check_every,
                "threads": torch.get_num_threads(), "init": init_from, "meta_seconds": meta_seconds,
                "held_back": "default:test" if args.source == "default" else "load_sample_crops(seed=1)"}
    results = {
        "targets_mean_db": float(targets.mean()), "target_end_to_end_db": target,
        "steps_to_target": {"random_median": float(rand_steps.median()), "learned_median": float(learn_steps.median()),
                            "learned_reached": int(torch.isfinite(learn_steps).sum()),
                            "ratio_of_medians": median_ratio, "median_per_image_ratio": float(per_image_ratio.median())},
        "short_schedule": {"steps": args.short_steps, "reached": short_reached, "psnr": float(short_final.mean())},
        "final_psnr": {"random": float(rand_final.mean()), "learned": float(learn_final.mean())},
        "train_psnr_by_step": {"random": {t: mean_at(rand_trace, t) for t in curve_at},
                               "learned": {t: mean_at(learn_trace, t) for t in curve_at}},
        "end_to_end": {"random": {"images_per_s": n / rand_stop_wall, "images_per_cpu_s": n / rand_stop_cpu,
                                  "image_steps": rand_stop.image_steps, "reached": rand_ok},
                       "learned": {"images_per_s": n / learn_stop_wall, "images_per_cpu_s": n / learn_stop_cpu,
                                   "image_steps": learn_stop.image_steps, "reached": learn_ok},
                       "speedup_cpu": rand_stop_cpu / learn_stop_cpu, "speedup_wall": rand_stop_wall / learn_stop_wall},
        "fit_seconds": {"random_full": rand_wall, "learned_full": learn_wall},
    }
    path = write_results(args.out, results_document("learned_init", "learned (Reptile) vs random SIREN init "
                                                    "on held-back images", settings, results))
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
