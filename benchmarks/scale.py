"""Scale: encode 1k, 10k and 100k tiny images end to end and watch time per image and peak memory.

Each size runs in a fresh Python process (so its peak RSS is its own): synthetic 8×8 gray images
(smooth gradients plus noise, seeded), a tiny 1x8 SIREN, a few Adam steps at lr 1e-2, then the compression
rounds (L1 pruning with a short retrain, 8-bit quantization of every layer), written to one ``.rinr`` with
``encode_file`` (checkpointed chunks of 4096 images, so one chunk's working memory is the same
at every size and what grows is what the set's size makes grow; the file is written from the
checkpointed chunks, one at a time) and read back. Printed per size: wall seconds per image,
peak RSS (and the part the encode adds beyond making the synthetic images), the file's size, and
both against the smallest size — the aim (issue 14): time per image
at 100k within 1.3× of 1k, peak RSS growing no faster than the file. Peak RSS is taken when the
encode returns (fit, compression, the file's write), counted from just after the images are made
(the peak is reset there: Linux ``clear_refs``); the file is then read back with the encoded set
released, and that read's peak is reported beside it (``read_peak_rss_mb``, and what the read
added to the RSS it started from, ``read_added_mb``: the file's tensors, then the set unpacked
into its device form, ~2.6× the file).

    python benchmarks/scale.py                         # 1k, 10k, 100k
    python benchmarks/scale.py --sizes 1000,20000      # a test-sized run

Writes benchmarks/results/scale-cpu.json. One torch thread (the machine is shared).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from rapidinr.core.results import results_document, write_results

RESULTS = Path(__file__).resolve().parent / "results"
# glibc raises its mmap threshold each time a large block is freed, after which blocks of that size
# come from the heap and stay there when freed: peak RSS then measures the allocator's history (it
# moved by 10-30 MB between identical 20k runs, so a 20k run could read 30 MB above the next). A fixed
# threshold (and trimming) makes every large block its own mapping, returned when freed: peak RSS then
# measures what the code holds (identical runs agree within 0.3 MB).
MALLOC_FIXED = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}

WORKER = r"""
import json, resource, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from rapidinr import load
from rapidinr.codec.prune import PruneConfig
from rapidinr.codec.quantize import QuantConfig
from rapidinr.core.config import Arch, FitConfig
from rapidinr.encoding.compress import CompressConfig
from rapidinr.encoding.runner import encode_file
from rapidinr.sources.datasets import ImageSet

def status_kb(key):  # a /proc/self/status field in kB (Linux), else None
    try:
        return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1])
    except (OSError, StopIteration):
        return None


def peak_kb():  # the peak RSS (kB) since the last reset_peak (VmHWM), else since the process started
    peak = status_kb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def reset_peak():
    try:  # Linux: writing 5 to clear_refs resets the peak RSS to the current RSS
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


n, steps, retrain, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
g = torch.Generator().manual_seed(0)
ramp = torch.linspace(0, 1, 8)
images = torch.empty(n, 1, 8, 8, dtype=torch.uint8)  # made a block at a time: no float copy of the set
for first in range(0, n, 8192):
    b = min(8192, n - first)
    base = ramp[:, None] * torch.rand(b, 1, 1, generator=g) + ramp[None, :] * torch.rand(b, 1, 1, generator=g)  # (b, 8, 8)
    images[first : first + b, 0] = ((base * 0.6 + torch.rand(b, 8, 8, generator=g) * 0.2) * 255).round().clamp(0, 255)
del base
reset_peak()
rss_images = peak_kb()
# 1x8 has no hidden-to-hidden layer: "all" layers, or 8-bit would quantize nothing
compression = CompressConfig(prune=PruneConfig(l1_ratio=0.2, retrain_steps=retrain), quant=QuantConfig(bits=8, layers="all"))
start = time.perf_counter()
summary = encode_file(ImageSet(images), out, Arch.parse("1x8", 1), FitConfig(steps=steps, lr=1e-2, chunk_size=4096), "cpu",
                      progress=False, compression=compression, overwrite=True)
encode_s = time.perf_counter() - start
rss_encode = peak_kb()  # the peak from the images made to the file written
psnr_mean = summary["psnr_mean"]
reset_peak()  # reading back stands for a later job (training) that opens the file
rss_before_read = status_kb("VmRSS")
back = load(out)
rss_read = peak_kb()
assert len(back) == n
print(json.dumps({"images": n, "encode_s": encode_s, "seconds_per_image": encode_s / n,
                  "peak_rss_mb": rss_encode / 1024,
                  "read_peak_rss_mb": rss_read / 1024,  # reading the file back, the encoded set released
                  "read_added_mb": (rss_read - (rss_before_read or 0)) / 1024,  # what the read itself added to the peak
                  "rss_after_images_mb": rss_images / 1024, "file_bytes": out.stat().st_size,
                  "psnr_mean": psnr_mean}))
"""


def run_repeats(n: int, args, folder: Path) -> dict:
    """``args.repeats`` fresh runs of one size: the median of each measurement (peak RSS moves by
    tens of MB from run to run with the allocator's heap), every run's values kept beside it."""
    runs = [run_size(n, args, folder) for _ in range(args.repeats)]
    out = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    out["runs"] = {key: [r[key] for r in runs] for key in ("seconds_per_image", "peak_rss_mb", "rss_after_images_mb",
                                                           "read_peak_rss_mb", "read_added_mb")}
    return out


def run_size(n: int, args, folder: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **MALLOC_FIXED}
    out = subprocess.run([sys.executable, "-c", WORKER, str(n), str(args.steps), str(args.retrain_steps),
                          str(folder / f"scale-{n}.rinr")], env=env, capture_output=True, text=True, check=False,
                         timeout=args.timeout)
    if out.returncode != 0:
        raise SystemExit(f"scale: the {n}-image run failed:\n{out.stderr[-3000:]}")
    (folder / f"scale-{n}.rinr").unlink(missing_ok=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _or_dash(value) -> str:
    return "-" if value is None else str(value)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--steps", type=int, default=20, help="Adam steps per image in round 1 (default 20)")
    p.add_argument("--retrain-steps", type=int, default=5, help="retraining steps after L1 pruning (default 5)")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--repeats", type=int, default=3, help="fresh runs per size, medians reported (default 3)")
    p.add_argument("--out", default=str(RESULTS / "scale-cpu.json"))
    args = p.parse_args(argv)
    sizes = [int(v) for v in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            rows.append(run_repeats(n, args, Path(tmp)))
            r = rows[-1]
            print(f"  {n:>7} images: {1000 * r['seconds_per_image']:.3f} ms/image, peak RSS {r['peak_rss_mb']:.0f} MB, "
                  f"file {r['file_bytes'] / 2**20:.1f} MB, PSNR {r['psnr_mean']:.2f} dB", flush=True)
    first = rows[0]
    print(f"scale: 8x8 gray, arch 1x8, {args.steps} steps + L1 0.2 ({args.retrain_steps} retrain steps) + 8-bit (all layers)")
    print(f"  {'images':>8}{'ms/image':>10}{'x first':>9}{'peak RSS MB':>13}{'encode MB':>11}{'growth':>8}"
          f"{'file MB':>9}{'file growth':>13}{'RSS/file':>10}{'vs prev':>9}{'read peak MB':>14}{'read adds MB':>14}")
    for prev, r in zip([None, *rows], rows):
        r["time_vs_first"] = round(r["seconds_per_image"] / first["seconds_per_image"], 3)
        # what the encode added to the peak, beyond making the synthetic images (this script's own)
        r["encode_rss_mb"] = round(r["peak_rss_mb"] - r["rss_after_images_mb"], 1)
        r["rss_growth_mb"] = round(r["encode_rss_mb"] - first["encode_rss_mb"], 1)
        r["file_growth_mb"] = round((r["file_bytes"] - first["file_bytes"]) / 2**20, 2)
        # MB of peak RSS per MB of file, from the smallest size to this one (the aim: at most 1)
        r["rss_per_file_mb"] = round(r["rss_growth_mb"] / r["file_growth_mb"], 2) if r["file_growth_mb"] > 0 else None
        # the same from the size before (past one chunk, 4096 images, the chunk's working memory is constant)
        step_file = (r["file_bytes"] - prev["file_bytes"]) / 2**20 if prev else 0.0
        r["rss_per_file_mb_vs_previous"] = (round((r["encode_rss_mb"] - prev["encode_rss_mb"]) / step_file, 2)
                                            if step_file > 0 else None)
        print(f"  {r['images']:>8}{1000 * r['seconds_per_image']:>10.3f}{r['time_vs_first']:>9.2f}"
              f"{r['peak_rss_mb']:>13.0f}{r['encode_rss_mb']:>11.1f}{r['rss_growth_mb']:>8.1f}{r['file_bytes'] / 2**20:>9.2f}"
              f"{r['file_growth_mb']:>13.2f}{_or_dash(r['rss_per_file_mb']):>10}{_or_dash(r['rss_per_file_mb_vs_previous']):>9}"
              f"{r['read_peak_rss_mb']:>14.0f}{r['read_added_mb']:>14.1f}")
    settings = {"sizes": sizes, "steps": args.steps, "retrain_steps": args.retrain_steps, "arch": "1x8",
                "image": "8x8 gray synthetic", "compression": "l1 0.2 + 8-bit (all layers)",
                "malloc": MALLOC_FIXED, "threads": 1,
                "repeats": args.repeats, "statistic": "median of the repeats"}
    document = results_document("scale", "end-to-end encode (fit, prune, quantize, write, read) at growing sizes",
                                settings, rows)
    print(f"wrote {write_results(args.out, document)}")
    return document


if __name__ == "__main__":
    main()
