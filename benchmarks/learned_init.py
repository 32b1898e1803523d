"""Learned against random initialization, on held-back images of the same kind (issue 7).

The learned init (``rapidinr meta-init``: Reptile, ``rapidinr/meta.py``; its recommended fit rate
and schedule chosen on held-out *training* images, ``rapidinr/init_tuning.py``) never saw the
images measured here: the embedded Fashion-MNIST test split (``--source default``, at 28×28 or
``--size 32x32``), photo crops at other positions (``--source samples-crops``: the init is
meta-learned here from crops of seed 0 and measured on crops of seed 1: other positions of the
same nine photos), or 32×32 crops of Kodak photos the init never saw (``--source kodak``: crops
of kodim17..kodim24 shrunk 4×; the shipped ``data/init-kodak-3x15-32x32`` was meta-learned on
crops of kodim01..kodim16). ``--compare-init FILE`` measures a second init on the same images
against the same random reference (``--source kodak``: by default the CIFAR-10 init, to choose
the one the compact preset uses for photo crops).

For each held-back image i, in one run:
- random init, the reference: R_i = its PSNR after 2000 steps at lr 1e-3 (the encoder's defaults);
- learned init, same 2000-step schedule (at ``--learned-lr``, default the init's recommended rate):
  the first step at which it reaches R_i (checked every 10 steps), and its PSNR after 2000 steps;
- learned init as ``encode --init learned`` runs it, with the init's recommended (lr, steps):
  steps to R_i and the PSNR at the end of its schedule;
- end to end: images/s of an encode that stops each image at the median R_i (early stopping and
  batch compaction on), random (2000-step budget) against learned (recommended settings).

    python benchmarks/learned_init.py                      # shipped 28x28 init, 128 test images
    python benchmarks/learned_init.py --size 32x32         # shipped 32x32 init (the issue's size)
    python benchmarks/learned_init.py --source samples-crops --images 32
    python benchmarks/learned_init.py --source kodak --images 64  # held-out Kodak photos, both RGB inits
    python benchmarks/learned_init.py --quick              # a smoke test (tests/test_meta.py runs it)

Writes benchmarks/results/learned_init-<source>-<size>-cpu.json.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from rapidinr.codec.measure import measure_weights
from rapidinr.core.config import Arch
from rapidinr.core.cputime import timed
from rapidinr.core.results import results_document, write_results
from rapidinr.encoding.fit import fit
from rapidinr.encoding.init_tuning import REFERENCE, final_psnr, recommend_fit, steps_to_reach, stored_psnr, traced_fit
from rapidinr.encoding.learned_init import MetaConfig, load_init, meta_learn
from rapidinr.sources.datasets import load_default, load_sample_crops, load_source

RESULTS = Path(__file__).parent / "results"
DATA = Path(__file__).resolve().parent.parent / "data"
# ../shared/data/kodak from the project root (or from the folder above, for a git worktree)
KODAK = next((d for d in (Path(__file__).resolve().parents[k] / "shared" / "data" / "kodak" for k in (2, 3))
              if d.is_dir()), Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak")
KODAK_HELD_OUT = "17-24"  # photos no shipped init saw (init-kodak-*: kodim01..16; init-cifar10-*: none)


def shipped_rgb_init(args, arch_text, data_name):
    """(images' arch, params, recommended fit, description) of ``--init`` or the shipped
    ``init-<data_name>-<arch>-32x32`` init, checked against 32×32 RGB."""
    arch = Arch.parse(arch_text, 3)
    path = Path(args.init) if args.init else DATA / f"init-{data_name}-{arch_text}-32x32.safetensors"
    learned = load_init(path)
    learned.check_fits(arch, 32, 32, path)
    return arch, learned.params, learned.info.get("fit"), f"{path.name}: {learned.info.get('command')}"


def held_back_and_init(args, arch_text):
    """(held-back images, init (P,), recommended {"lr", "steps"}, where the init came from, seconds)."""
    if args.source == "default":
        size = tuple(map(int, args.size.split("x")))
        test = load_source("default", None if size == (28, 28) else size, "test", False, False,
                           args.images, 0).images  # (N, 1, H, W) the test split
        arch = Arch.parse(arch_text, 1)
        if args.quick and not args.init:  # a tiny init made here, from the training split
            train = load_default("train").images  # (N, 1, 28, 28): 64 to meta-learn from, 8 to choose the fit
            init, _ = meta_learn(train[:64], arch, MetaConfig(outer_steps=args.outer_steps), progress=False)
            rec = recommend_fit(train[64:72], arch, init, lrs=(3e-3,), schedules=(20,),
                                reference=replace(REFERENCE, steps=args.steps, check_every=args.check_every),
                                progress=False)
            return test, arch, init, rec, "meta_learn(default:train[:64]) (--quick)", None
        path = Path(args.init) if args.init else DATA / f"init-default-{arch_text}-{args.size}.safetensors"
        learned = load_init(path)
        learned.check_fits(arch, *size, path)
        return test, arch, learned.params, learned.info.get("fit"), f"{path.name}: {learned.info.get('command')}", None
    if args.source == "kodak":
        test = load_source(f"kodak/4@{KODAK_HELD_OUT}:{args.kodak}", (32, 32), limit=args.images, seed=1).images
        return (test, *shipped_rgb_init(args, arch_text, "kodak"), None)
    test = load_sample_crops(args.images, (32, 32), seed=1).images  # other positions than the training crops
    arch = Arch.parse(arch_text, 3)
    train = load_sample_crops(512 + 32, (32, 32), seed=0).images
    began = time.perf_counter()
    init, _ = meta_learn(train[:512], arch, MetaConfig(outer_steps=args.outer_steps, inner_lr=5e-3), progress=False)
    rec = recommend_fit(train[512:], arch, init, progress=False)
    return (test, arch, init, rec, f"meta_learn(load_sample_crops(512, seed=0), outer_steps={args.outer_steps}, "
            "inner_lr=5e-3) + recommend_fit(32 more training crops)", time.perf_counter() - began)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=["default", "samples-crops", "kodak"], default="default")
    parser.add_argument("--kodak", default=str(KODAK), help="the Kodak folder (kodim01..24.png), --source kodak")
    parser.add_argument("--compare-init", help="a second learned-init file measured beside the first on the same "
                        "images (--source kodak default: data/init-cifar10-ARCH-32x32.safetensors; 'none': no second)")
    parser.add_argument("--size", default="28x28", help="default source: 28x28 or 32x32 (a shipped init each)")
    parser.add_argument("--init", help="a learned-init file (default: the shipped init for --source default)")
    parser.add_argument("--images", type=int, default=128, help="held-back images measured")
    parser.add_argument("--steps", type=int, default=2000, help="the random init's budget (2000)")
    parser.add_argument("--learned-lr", type=float, help="the learned init's rate on the 2000-step schedule "
                        "(default: its recommended rate)")
    parser.add_argument("--check-every", type=int, default=10, help="resolution of steps-to-target")
    parser.add_argument("--arch", default="3x15")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--outer-steps", type=int, default=300, help="meta-learning, when it runs here")
    parser.add_argument("--quick", action="store_true", help="8 images, 100 steps, tiny meta-learning")
    parser.add_argument("--out", help="results JSON (default: benchmarks/results/learned_init-SOURCE-SIZE-cpu.json)")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.steps, args.outer_steps, args.check_every = 8, 100, 10, 5
    torch.set_num_threads(args.threads)
    size_name = args.size if args.source == "default" else "32x32"
    if args.source == "kodak" and not Path(args.kodak).is_dir():
        raise SystemExit(f"learned_init: no Kodak folder at {args.kodak} (pass --kodak DIR)")
    out = args.out or RESULTS / f"learned_init-{args.source}-{size_name}-cpu.json"

    if args.source == "kodak" and args.compare_init is None:
        args.compare_init = str(DATA / f"init-cifar10-{args.arch}-32x32.safetensors")
    if args.compare_init == "none":
        args.compare_init = None
    held_back, arch, init, rec, init_from, meta_seconds = held_back_and_init(args, args.arch)
    if rec is None:
        raise SystemExit("the init has no recommended fit (made with --validate 0); pass --learned-lr")
    n = held_back.shape[0]
    learned_lr = args.learned_lr or rec["lr"]
    print(f"learned vs random init: {n} held-back images ({args.source}, {size_name}), arch {arch.name}, "
          f"{torch.get_num_threads()} thread(s); init: {init_from}")
    print(f"recommended fit for the learned init: lr {rec['lr']:g}, {rec['steps']} steps")

    reference = replace(REFERENCE, steps=args.steps, check_every=args.check_every)
    rand, rand_trace = traced_fit(held_back, arch, reference, None)
    targets = final_psnr(rand_trace, reference, n)  # (N,) R_i
    same, same_trace = traced_fit(held_back, arch, replace(reference, lr=learned_lr), init)
    rec_cfg = replace(reference, lr=rec["lr"], steps=rec["steps"])
    short, short_trace = traced_fit(held_back, arch, rec_cfg, init)

    rand_steps = steps_to_reach(rand_trace, targets)
    same_steps = steps_to_reach(same_trace, targets)
    short_steps = steps_to_reach(short_trace, targets)
    final = {name: measure_weights(r.params, arch, held_back) for name, r in
             (("random", rand), ("learned_same_schedule", same), ("learned_recommended", short))}
    # as a .rinr stores them (paper Sec. IV-B, the demo's setting): hidden layers 8-bit, biases 16
    final_8bit = {name: stored_psnr(held_back, r.params, arch) for name, r in
                  (("random", rand), ("learned_same_schedule", same), ("learned_recommended", short))}

    def summary(steps):
        median = float(steps.median())
        return {"median": median, "reached": int(torch.isfinite(steps).sum()),
                "ratio_to_random_median": float(rand_steps.median()) / median}

    # end to end: stop each image at the median R_i; random at its defaults, learned as recommended
    target = float(targets.median())
    compared = compare_init(args, held_back, arch, reference, targets, rand_steps, n) if args.compare_init else None
    rand_stop, rand_wall, rand_cpu = timed(lambda: fit(held_back, arch, replace(reference, target_psnr=target),
                                                        progress=False))
    learn_stop, learn_wall, learn_cpu = timed(lambda: fit(held_back, arch, replace(rec_cfg, target_psnr=target),
                                                          init=init, progress=False))
    rand_ok = int((rand_stop.train_psnr >= target).sum())
    learn_ok = int((learn_stop.train_psnr >= target).sum())

    print(f"\nsteps to R_i (each image's PSNR after {args.steps} steps at lr {reference.lr:g} from the random "
          f"init; mean {targets.mean():.2f} dB):")
    for label, steps, name in (("random, reference", rand_steps, "random"),
                               (f"learned, same {args.steps}-step schedule at lr {learned_lr:g}", same_steps,
                                "learned_same_schedule"),
                               (f"learned, recommended {rec['steps']} steps at lr {rec['lr']:g}", short_steps,
                                "learned_recommended")):
        s = summary(steps)
        print(f"  {label:<48} median {s['median']:>6.0f} steps ({s['ratio_to_random_median']:>5.1f}x fewer), "
              f"{s['reached']:>3}/{n} reach R_i, final PSNR {final[name].mean():.2f} dB "
              f"({final_8bit[name].mean():.2f} with 8-bit hidden layers)")
    print(f"  refits after divergence (traced as never reaching R_i): random {rand.refits}, learned "
          f"{same.refits} / {short.refits}")
    print(f"end to end to {target:.2f} dB (median R_i; early stop + batch compaction):")
    print(f"  random : {n / rand_wall:7.2f} images/s wall, {n / rand_cpu:7.2f} per CPU s, "
          f"{rand_stop.image_steps} image-steps, {rand_ok}/{n} reached (budget {args.steps} steps), "
          f"{rand_ok / rand_cpu:.2f} images at the target per CPU s")
    print(f"  learned: {n / learn_wall:7.2f} images/s wall, {n / learn_cpu:7.2f} per CPU s, "
          f"{learn_stop.image_steps} image-steps, {learn_ok}/{n} reached (budget {rec['steps']} steps), "
          f"{learn_ok / learn_cpu:.2f} images at the target per CPU s")
    print(f"  -> {rand_cpu / learn_cpu:.1f}x images/s (CPU seconds), {rand_wall / learn_wall:.1f}x (wall), "
          f"{rand_stop.image_steps / max(learn_stop.image_steps, 1):.1f}x fewer image-steps, "
          f"{(learn_ok / learn_cpu) / max(rand_ok / rand_cpu, 1e-9):.1f}x images at the target per CPU s")

    settings = {"source": args.source, "size": size_name, "images": n, "arch": arch.name,
                "reference": {"init": "random", "steps": args.steps, "lr": reference.lr},
                "learned_lr_same_schedule": learned_lr, "recommended": {"lr": rec["lr"], "steps": rec["steps"]},
                "check_every": args.check_every, "threads": torch.get_num_threads(), "init": init_from,
                "meta_seconds": meta_seconds,
                "held_back": {"default": f"default:test[:{n}]", "samples-crops": "load_sample_crops(seed=1)",
                              "kodak": f"kodak/4@{KODAK_HELD_OUT}:KODAK crops 32x32, seed 1"}[args.source],
                "compare_init": Path(args.compare_init).name if args.compare_init else None}
    results = {
        "targets_mean_db": float(targets.mean()), "target_end_to_end_db": target,
        "steps_to_target": {"random": summary(rand_steps), "learned_same_schedule": summary(same_steps),
                            "learned_recommended": summary(short_steps)},
        "final_psnr": {name: float(value.mean()) for name, value in final.items()},
        # images refitted after divergence: the trace follows first fits only, so a refitted image
        # counts as never reaching R_i (and a refitted reference image has R_i = -inf); 0 keeps it exact
        "refits": {"random": rand.refits, "learned_same_schedule": same.refits, "learned_recommended": short.refits},
        "final_psnr_8bit_hidden": {name: float(value.mean()) for name, value in final_8bit.items()},
        "end_to_end": {"random": {"images_per_s": n / rand_wall, "images_per_cpu_s": n / rand_cpu,
                                  "image_steps": rand_stop.image_steps, "reached": rand_ok},
                       "learned": {"images_per_s": n / learn_wall, "images_per_cpu_s": n / learn_cpu,
                                   "image_steps": learn_stop.image_steps, "reached": learn_ok},
                       "speedup_cpu": rand_cpu / learn_cpu, "speedup_wall": rand_wall / learn_wall,
                       "reached_per_cpu_s_ratio": (learn_ok / learn_cpu) / max(rand_ok / rand_cpu, 1e-9)},
    }
    if compared is not None:
        results["compare_init"] = compared
        print(f"second init, same images and reference ({compared['init']}):")
        for name in ("same_schedule", "recommended"):
            c = compared[name]
            print(f"  {name:<15} lr {c['lr']:g}, {c['steps']} steps: median {c['steps_to_target']['median']:.0f} steps "
                  f"to R_i, {c['steps_to_target']['reached']}/{n} reach it, final PSNR {c['final_psnr']:.2f} dB "
                  f"({c['final_psnr_8bit_hidden']:.2f} with 8-bit hidden layers), refits {c['refits']}")
    path = write_results(out, results_document("learned_init", "learned (Reptile) vs random SIREN init "
                                               "on held-back images", settings, results))
    print(f"wrote {path}")
    return results


def compare_init(args, held_back, arch, reference, targets, rand_steps, n) -> dict:
    """A second init on the same held-back images and random reference: steps to R_i and final
    PSNR (fp32 and with 8-bit hidden layers), on the 2000-step schedule at its recommended rate
    and on its recommended (lr, steps)."""
    path = Path(args.compare_init)
    learned = load_init(path)
    learned.check_fits(arch, held_back.shape[2], held_back.shape[3], path)
    rec = learned.recommended_fit or {"lr": reference.lr, "steps": reference.steps}
    out = {"init": path.name, "command": learned.info.get("command")}
    for name, cfg in (("same_schedule", replace(reference, lr=rec["lr"])),
                      ("recommended", replace(reference, lr=rec["lr"], steps=rec["steps"]))):
        result, trace = traced_fit(held_back, arch, cfg, learned.params)
        steps = steps_to_reach(trace, targets)
        median = float(steps.median())
        out[name] = {"lr": cfg.lr, "steps": cfg.steps, "refits": result.refits,
                     "steps_to_target": {"median": median, "reached": int(torch.isfinite(steps).sum()),
                                         "ratio_to_random_median": float(rand_steps.median()) / median},
                     "final_psnr": float(measure_weights(result.params, arch, held_back).mean()),
                     "final_psnr_8bit_hidden": float(stored_psnr(held_back, result.params, arch).mean())}
    return out


if __name__ == "__main__":
    main()
