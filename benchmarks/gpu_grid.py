"""The Fig. 8 grid on one GPU (prepared for an H200): pipelines × worker counts × two image sizes.

    python benchmarks/gpu_grid.py            # on the GPU machine, under 8 minutes
    python benchmarks/gpu_grid.py --tiny     # a CPU smoke run at tiny sizes (exercises every path)

Datasets: crops of scikit-image's bundled photos (offline, RGB), labelled by the photo they come
from, at 32×32 (CIFAR-sized: pad-crop, 3×3 stem, 3x15 SIREN fitted here for a few hundred steps)
and at 224×224 (ImageNet-sized: random-resized crop, torchvision stem, 10x40 SIREN with
initialization weights: decoding costs the same whatever the weights hold, so the 224 INR times
honestly but its accuracy means nothing). Pipelines: inr, tensor, nvjpeg, and jpeg and dali at
1, 2, 4, 8 workers. Every run: warm-up (undone), then ``--epochs`` timed epochs of ResNet-18,
batch 128, bf16 autocast, channels-last. A time guard skips (and lists) runs that would start
after the budget. Writes ``benchmarks/results/pipelines-cuda.json`` (``--tiny``: ``pipelines-cpu-tiny.json``)
and prints a table; ``rapidinr figures`` draws Fig. 8 from it.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from rapidinr.core.results import results_document, write_results
from rapidinr.study.grid import GridConfig, run_pipeline_grid

RESULTS = Path(__file__).resolve().parent / "results"

FULL = [  # (entry, train images, encode steps)
    ("photos@32x32", 8192, 200),
    ("photos@224x224", 2048, 0),
]
TINY = [("photos@16x16", 32, 5), ("photos@72x72", 16, 0)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="CPU smoke run: tiny sizes, 1 worker, 1 epoch")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--workers", default="1,2,4,8")
    p.add_argument("--budget-s", type=float, default=420, help="start no run after this many seconds (default 420)")
    p.add_argument("--output", help="results JSON (default: benchmarks/results/pipelines-<cuda|cpu-tiny>.json)")
    args = p.parse_args(argv)
    start = time.perf_counter()
    if args.tiny:
        device, plan, workers, epochs, batch = torch.device("cpu"), TINY, [1], 1, 16
        torch.set_num_threads(1)
        name = "cpu-tiny"
    else:
        if not torch.cuda.is_available():
            print("gpu_grid: no CUDA GPU here; use --tiny for the CPU smoke run", file=sys.stderr)
            return 2
        device, plan, epochs, batch = torch.device("cuda"), FULL, args.epochs, 128
        workers = [int(w) for w in args.workers.split(",")]
        torch.backends.cudnn.benchmark = True
        name = "cuda"  # the GPU's name is in the file's hardware block; rapidinr figures reads this name
    output = Path(args.output) if args.output else RESULTS / f"pipelines-{name}.json"
    rows, skipped = [], []
    for entry, limit, steps in plan:
        grid = GridConfig(("inr", "tensor", "nvjpeg", "jpeg", "dali"), tuple(workers), epochs, limit=limit,
                          test_limit=min(limit, 1000), encode_steps=steps, batch_size=batch,
                          deadline=start + args.budget_s)
        out = run_pipeline_grid([entry], grid, device)
        rows += out["rows"]
        skipped += out["skipped"]
        write_results(output, results_document(  # after each dataset, so a killed run keeps what it has
            "pipelines", "Fig. 8 grid: ResNet-18 training time per pipeline and worker count",
            {"plan": [{"data": e, "train_images": n, "encode_steps": s} for e, n, s in plan], "workers": workers,
             "epochs": epochs, "batch_size": batch, "device": str(device), "budget_s": args.budget_s},
            {"rows": rows, "skipped": skipped, "elapsed_s": round(time.perf_counter() - start, 1)}))
    print(f"\n{'data':>16} {'pipeline':>10} {'w':>2} {'s/epoch':>8} {'img/s':>9} {'data s':>7} {'step s':>7} {'CPU core-s':>10}")
    for r in rows:
        print(f"{r['data']:>16} {r['pipeline']:>10} {r['workers']:>2} {r['mean_epoch_s']:8.3f} {r['images_per_s']:9.0f} "
              f"{r['data_s']:7.2f} {r['step_s']:7.2f} {r['cpu_core_s']:10.1f}")
    for s in skipped:
        print(f"skipped {s['data']} {s['pipeline']} w={s['workers']}: {s['reason']}")
    print(f"wrote {output} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
