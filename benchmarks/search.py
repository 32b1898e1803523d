"""Fig. 5 search benchmark: run the three studies and record every fit.

    python benchmarks/search.py            # quick settings, CPU, under a minute; writes search-<study>-cpu.json
    python benchmarks/search.py --full     # the paper's budgets (GPU); writes search-<study>-full.json,
                                           # which `rapidinr figures -o DIR` then plots instead of recomputing

Also prints, side by side in one run, the time to fit a study's images in one batched call
against one image at a time (the paper's code fits one image per Python loop).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from rapidinr.core.config import Arch
from rapidinr.core.devices import resolve_device
from rapidinr.study import search

RESULTS = Path(__file__).resolve().parent / "results"


def batched_vs_one_by_one(device, images: int = 16, steps: int = 100) -> dict:
    photos = search.study_images(search.SearchSettings(images=images, size=32))
    spec = search.FitSpec("lr", Arch(3, 15, 3), steps, 3e-3)
    start = time.perf_counter()
    batched = search.fit_row(photos, spec, device)
    t_batched = time.perf_counter() - start
    start = time.perf_counter()
    singles = [search.fit_row(photos[i : i + 1], spec, device, seed=i) for i in range(images)]  # same inits
    t_single = time.perf_counter() - start
    single_psnr = sum(r["psnr_mean"] for r in singles) / images
    return {"images": images, "steps": steps, "batched_s": t_batched, "one_by_one_s": t_single,
            "speedup": t_single / t_batched, "psnr_batched": batched["psnr_mean"], "psnr_one_by_one": single_psnr}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the paper-sized settings (use a GPU)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    settings = search.SearchSettings.full() if args.full else search.SearchSettings.quick()
    tag = "full" if args.full else device.type
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    all_rows = []
    for study in ("layers", "w0", "lr"):
        start = time.perf_counter()
        rows = search.run_study(study, settings, device=str(device), progress=True)
        seconds = time.perf_counter() - start
        all_rows += rows
        path = search.save_results(out / f"search-{study}-{tag}.json", f"fig5-{study}", rows,
                                   {**settings.to_json(), "device": str(device), "seconds": round(seconds, 2)},
                                   f"Fig. 5 {study} study: one row per fit")
        print(f"{study:>6}: {len(rows)} fits in {seconds:.1f} s -> {path}")
    print("\n".join(search.summarize(all_rows)))
    cmp = batched_vs_one_by_one(str(device))
    print(f"batched vs one image at a time ({cmp['images']} images, {cmp['steps']} steps, 3x15): "
          f"{cmp['batched_s']:.2f} s vs {cmp['one_by_one_s']:.2f} s = {cmp['speedup']:.1f}x; "
          f"PSNR {cmp['psnr_batched']:.2f} vs {cmp['psnr_one_by_one']:.2f} dB")
    search.save_results(out / f"search-batching-{tag}.json", "search-batching", [cmp],
                        {"device": str(device), "threads": torch.get_num_threads()},
                        "one batched fit of N images against N single-image fits, same settings")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
