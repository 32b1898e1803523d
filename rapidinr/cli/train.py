"""`rapidinr train`: train ResNet-18 through one pipeline and report time and accuracy.

Under ``torchrun --nproc_per_node=K rapidinr train ...`` it trains with DDP (gloo on the CPU).
"""
from __future__ import annotations

import json

from rapidinr.core import distributed
from rapidinr.core.devices import resolve_device
from rapidinr.core.errors import UserError
from rapidinr.core.results import results_document, write_results
from rapidinr.sources.datasets import parse_size
from rapidinr.training.loaders import PIPELINES, check_workers, require_dali
from rapidinr.training.loop import TrainConfig, load_train_data, run_training


def add(sub):
    p = sub.add_parser("train", help="train ResNet-18 through one data pipeline (time and accuracy)")
    p.add_argument("--data", required=True, help="a .rinr file (the inr pipeline) or a SOURCE (default, "
                   "cifar10:ROOT, a folder, ...)")
    p.add_argument("--pipeline", required=True, choices=PIPELINES, help="inr, tensor, jpeg, dali or nvjpeg")
    p.add_argument("--workers", type=int, help="CPU workers of the jpeg and dali pipelines (default 1)")
    p.add_argument("--epochs", type=int, default=10, help="epochs (default 10, as the paper's Fig. 8)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    p.add_argument("--size", help="training size HxW (default: the images' own size)")
    p.add_argument("--batch-size", type=int, default=128, help="batch size per process (default 128)")
    p.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (default 0.01)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="train on the first N images only")
    p.add_argument("--test", help="SOURCE of the test images (default: the test split of the data's source)")
    p.add_argument("--test-limit", type=int, help="test on the first N test images only")
    p.add_argument("--jpeg-quality", type=int, default=90, help="quality of the JPEG files the jpeg, dali "
                   "and nvjpeg pipelines read (default 90)")
    p.add_argument("--augment", default="auto", choices=("auto", "pad-crop", "resized-crop", "none"),
                   help="augmentation (default: pad-crop up to 64 px, random-resized crop above)")
    p.add_argument("--target-accuracy", type=float, help="report the training time to reach this test accuracy")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps, undone afterwards (default 3)")
    p.add_argument("--results", help="write the results JSON here")
    p.add_argument("--check-shards", action="store_true", help="under torchrun: verify the ranks' samples "
                   "are disjoint and cover each epoch (recorded in the results)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=run)


def run(args) -> int:
    workers = check_workers(args.pipeline, args.workers)
    if args.pipeline == "dali":
        require_dali()
    if not 1 <= args.jpeg_quality <= 100:
        raise UserError(f"--jpeg-quality must be 1..100, got {args.jpeg_quality}")
    if args.target_accuracy is not None and not 0 < args.target_accuracy <= 1:
        raise UserError(f"--target-accuracy is a fraction in (0, 1], got {args.target_accuracy}")
    if args.warmup < 0:
        raise UserError(f"--warmup must be >= 0, got {args.warmup}")
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                      warmup_batches=args.warmup, target_accuracy=args.target_accuracy)
    device = resolve_device(args.device)
    if args.pipeline == "nvjpeg" and device.type != "cuda":
        raise UserError(f"--pipeline nvjpeg decodes on a CUDA GPU; this run's device is {device} "
                        "(use jpeg or dali on the CPU)")
    place = distributed.init(device)
    device = distributed.local_device(device, place)
    try:
        data = load_train_data(args.data, args.test, args.limit, args.test_limit, device,
                               decode_inr=args.pipeline != "inr")
        size = parse_size(args.size) or _own_size(data)
        result = run_training(args.pipeline, data, cfg, size, device, workers, args.jpeg_quality, args.augment,
                              progress=not args.quiet, check_shards=args.check_shards)
        if place.is_main:
            doc = results_document("train", f"ResNet-18 through the {args.pipeline} pipeline", result["settings"],
                                   {k: v for k, v in result.items() if k != "settings"})
            if args.results:
                write_results(args.results, doc)
            acc = result["final_test_accuracy"]
            print(f"{args.pipeline}: {cfg.epochs} epochs in {result['total_wall_s']:.2f} s "
                  f"({result['images_per_s']:.0f} img/s, data {result['data_s']:.2f} s, step {result['step_s']:.2f} s, "
                  f"{result['cpu_core_s']:.1f} CPU core-s), test accuracy {acc:.4f}"
                  + (f"; results in {args.results}" if args.results else ""))
            if args.results is None and args.quiet:
                print(json.dumps(doc["results"]))
    finally:
        distributed.finish()
    return 0


def _own_size(data) -> tuple[int, int]:
    if data.inrs is not None:
        return data.inrs.height, data.inrs.width
    return tuple(data.images.shape[-2:])
