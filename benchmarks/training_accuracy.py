"""Fig. 7 on this CPU: ResNet-18 test accuracy after one short schedule, by how the training set is stored.

Variants, all on the embedded default (Fashion-MNIST subset, 28×28 gray), the same model,
augmentation and schedule, each trained with seeds 0..``--seeds``-1 (model init, order and
augmentation draws) and tested on the 1,000 original test images; accuracy is reported as
mean ± sample std over the seeds, and each variant's gap to the originals paired by seed:

- ``original``: the raw uint8 images (tensor pipeline);
- ``inr-fp32``: a 3x15 SIREN per image, float32 weights (inr pipeline, decoded every batch);
- ``inr-8bit``: the same weights with hidden layers quantized to 8 bits (``rapidinr.encoding.compress``,
  when that module is present; otherwise reported as not available);
- ``jpeg@inr-8bit`` / ``jpeg@inr-fp32``: JPEG at the highest quality that fits each image into
  the same bytes as the INR variant (``rapidinr.study.baselines.jpeg_at_budget``), decoded and trained
  through the tensor pipeline.

Bytes per image come from the real serialized ``.rinr`` size and the real JPEG file sizes.
Writes ``benchmarks/results/training-accuracy-cpu.json`` (read by ``rapidinr.study.figures.training``).

    python benchmarks/training_accuracy.py                       # 1024 images, 3 epochs, batch 32
    python benchmarks/training_accuracy.py --images 256 --epochs 1 --encode-steps 200   # quick
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

from rapidinr import encode
from rapidinr.core.metrics import psnr as psnr_of
from rapidinr.core.results import results_document, write_results
from rapidinr.sources.datasets import load_default
from rapidinr.training.loop import TrainConfig, TrainData, run_training

RESULTS = Path(__file__).resolve().parent / "results" / "training-accuracy-cpu.json"


def eight_bit(images, inrs, steps: int):
    """The fp32 set with hidden layers quantized to 8 bits, or None when rapidinr.encoding.compress is absent."""
    try:
        from rapidinr.codec.quantize import QuantConfig
        from rapidinr.core.config import FitConfig
        from rapidinr.encoding.compress import CompressConfig, compress
    except ImportError:
        return None
    return compress(images, inrs.arch, FitConfig(steps=steps), CompressConfig(quant=QuantConfig(bits=8)),
                    init=inrs.dense_params().cpu(), progress=False, labels=inrs.labels, class_names=inrs.class_names)


def std(values: torch.Tensor) -> float:
    """The sample standard deviation (0 for one value)."""
    return float(values.double().std()) if values.numel() > 1 else 0.0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=1024)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--encode-steps", type=int, default=1000)
    p.add_argument("--test-images", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=32, help="default 32: a short CPU schedule needs more "
                   "steps than batch 128 (the paper's) gives; the same for every variant")
    p.add_argument("--cache", help="folder to keep the fp32 .rinr in and reuse it from (same settings)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1 on this shared machine)")
    p.add_argument("--skip-jpeg-fp32", action="store_true", help="leave out JPEG at the fp32 INR's size")
    p.add_argument("--seeds", type=int, default=3, help="train every variant with seeds 0..N-1 (model init, "
                   "order, augmentation) and report mean ± std over them (default 3; one seed on 1,000 test "
                   "images is ±1.5 points)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--output", help="default: benchmarks/results/training-accuracy-<cpu|cuda>.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    args.output = args.output or str(RESULTS.with_name(f"training-accuracy-{device.type}.json"))
    from rapidinr.study import baselines

    train = load_default("train").subset(0, args.images)
    test = load_default("test").subset(0, args.test_images)
    images, labels = train.images, train.labels
    if args.seeds < 1:
        p.error("--seeds must be >= 1")
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, warmup_batches=0)

    start = time.perf_counter()
    cached = Path(args.cache) / f"default-{args.images}-3x15-{args.encode_steps}.rinr" if args.cache else None
    if cached is not None and cached.is_file():
        from rapidinr import load

        fp32 = load(cached)
    else:
        fp32 = encode(images, "3x15", steps=args.encode_steps, labels=labels, class_names=train.class_names,
                      progress=False, device=device)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            fp32.save(cached)
    print(f"encoded {len(fp32)} images in {time.perf_counter() - start:.0f} s: {fp32.info()['bytes_per_image']:.0f} "
          f"B/image, PSNR {float(fp32.psnr.mean()):.2f} dB", flush=True)
    q8 = eight_bit(images, fp32, args.encode_steps)
    if q8 is not None:
        q8.psnr = psnr_of(images, q8.decode().cpu())
        print(f"8-bit: {q8.info()['bytes_per_image']:.0f} B/image, PSNR {float(q8.psnr.mean()):.2f} dB", flush=True)
    else:
        print("8-bit: rapidinr.encoding.compress is not available yet; left out", flush=True)

    variants = [("original", "original", "tensor", images, None, float(images[0].numel()), None)]
    variants.append(("inr-fp32", "inr", "inr", None, fp32, fp32.info()["bytes_per_image"], float(fp32.psnr.mean())))
    budgets = [("inr-8bit", q8)] if q8 is not None else []
    if q8 is not None:
        variants.append(("inr-8bit", "inr", "inr", None, q8, q8.info()["bytes_per_image"], float(q8.psnr.mean())))
    if not args.skip_jpeg_fp32:
        budgets.append(("inr-fp32", fp32))
    for name, inrs in budgets:
        jpg = baselines.jpeg_at_budget(images, inrs.info()["bytes_per_image"])
        variants.append((f"jpeg@{name}", "jpeg", "tensor", jpg.images, None, float(jpg.bytes.double().mean()),
                         float(jpg.psnr.mean())))
        print(f"jpeg@{name}: {float(jpg.bytes.double().mean()):.0f} B/image (quality {float(jpg.quality.double().mean()):.0f} "
              f"mean), PSNR {float(jpg.psnr.mean()):.2f} dB", flush=True)

    rows = []
    for label, kind, pipeline, pixels, inrs, nbytes, psnr in variants:
        data = TrainData(labels, 10, 1, test.images, test.labels, pixels, inrs, label)
        runs = [run_training(pipeline, data, dataclasses.replace(cfg, seed=seed), (28, 28), device, progress=False)
                for seed in range(args.seeds)]
        accuracy = torch.tensor([r["final_test_accuracy"] for r in runs], dtype=torch.float64)  # (seeds,)
        rows.append({"label": label, "kind": kind, "pipeline": pipeline, "bytes_per_image": round(nbytes, 1),
                     "psnr": round(psnr, 3) if psnr is not None else None,
                     "accuracy": float(accuracy.mean()), "accuracy_std": std(accuracy),
                     "accuracy_per_seed": accuracy.tolist(), "seeds": args.seeds,
                     "train_s": sum(r["total_wall_s"] for r in runs) / len(runs),
                     "accuracy_per_epoch": [e.get("test_accuracy") for e in runs[0]["epochs"]]})
        print(f"{label:>14}: {nbytes:7.0f} B/image, test accuracy {100 * float(accuracy.mean()):.2f} "
              f"± {100 * std(accuracy):.2f}% over {args.seeds} seed(s) ({rows[-1]['train_s']:.0f} s a run)", flush=True)
    base = rows[0]
    for row in rows[1:]:
        gap = torch.tensor(row["accuracy_per_seed"]) - torch.tensor(base["accuracy_per_seed"])  # paired by seed
        print(f"{row['label']:>14}: {100 * float(gap.mean()):+.2f} ± {100 * std(gap):.2f} points against the "
              f"originals, paired by seed (target: INR within 2)")
    settings = {"device": str(device), "images": args.images, "epochs": args.epochs, "encode_steps": args.encode_steps, "arch": "3x15",
                "test_images": args.test_images, "batch_size": args.batch_size, "threads": args.threads,
                "seeds": args.seeds,
                "augment": "pad-crop 4 px + flip", "eight_bit_available": q8 is not None}
    write_results(args.output, results_document(
        "training-accuracy", f"Fig. 7: ResNet-18 accuracy by storage of the training set (embedded default, {device.type})",
        settings, {"variants": rows}))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
