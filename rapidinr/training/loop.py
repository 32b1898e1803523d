"""Train ResNet-18 from any loader, timed by the one harness; DDP under ``torchrun``.

The paper's recipe (Sec. VI-A): SGD, lr 0.01, momentum 0.9, weight decay 5e-4, batch 128, here
with a cosine schedule over all steps. On a GPU: channels-last memory and bf16 autocast. Test
accuracy is always measured on the original test images (resized once to the training size).
"""
from __future__ import annotations

import copy
import math
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from rapidinr.codec.inrset import INRSet, load
from rapidinr.core import distributed
from rapidinr.core.errors import UserError
from rapidinr.core.metrics import to_uint8
from rapidinr.sources.datasets import load_source
from rapidinr.sources.images import resize_images
from rapidinr.training import augment, loaders
from rapidinr.training.augment import AugmentConfig
from rapidinr.training.models import prepare, resnet18, stem_name
from rapidinr.training.timing import EpochTimer, synchronize


@dataclass(frozen=True)
class TrainConfig:
    """How the backbone is trained (defaults: the paper's CIFAR-10 settings)."""

    epochs: int = 10  # the paper's timing runs use 10 epochs (Fig. 8)
    batch_size: int = 128  # paper: 128 for CIFAR-10, 64 for the larger images
    lr: float = 0.01  # SGD learning rate, decayed by a cosine over all steps
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0  # model init, permutations and augmentation draws
    warmup_batches: int = 3  # untimed steps first (compilation, workers starting); then undone
    amp: bool | None = None  # bf16 autocast; None: on a GPU only
    target_accuracy: float | None = None  # report the training time to reach this test accuracy
    eval_every: int = 1  # epochs between test evaluations (the last epoch is always evaluated)
    eval_batch: int = 500

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise UserError(f"--epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be >= 1, got {self.batch_size}")
        if not 0 < self.lr < 10:
            raise UserError(f"--lr must be in (0, 10), got {self.lr}")


@dataclass
class TrainData:
    """What a run trains and tests on. ``images`` are the training images (uint8 N×C×H×W) for the
    pixel pipelines; ``inrs`` the INRSet for the ``inr`` pipeline; test images are originals."""

    labels: torch.Tensor  # (N,) int64
    num_classes: int
    channels: int
    test_images: torch.Tensor  # (M, C, h, w) uint8 originals
    test_labels: torch.Tensor  # (M,) int64
    images: torch.Tensor | None = None  # (N, C, h, w) uint8
    inrs: object = None  # INRSet
    name: str = ""


def build_loader(pipeline: str, data: TrainData, aug: AugmentConfig, device: torch.device, workers: int,
                 cfg: TrainConfig, place: distributed.Rank, workdir: Path, jpeg_quality: int = 90):
    """The named pipeline over ``data``; JPEG-based pipelines get JPEG files in ``workdir``."""
    common = dict(batch_size=cfg.batch_size, seed=cfg.seed, rank=place.rank, world=place.world)
    if pipeline == "inr":
        if data.inrs is None:
            raise UserError("--pipeline inr needs a .rinr file as --data (make one with rapidinr encode)")
        budget = 4096 if device.type == "cuda" else 512  # MB of decode activations per pass
        return loaders.InrLoader(data.inrs.to(device), aug, memory_budget_mb=budget, **common)
    if data.images is None:
        raise UserError(f"--pipeline {pipeline} needs images (a SOURCE as --data)")
    if pipeline == "tensor":
        return loaders.TensorLoader(data.images, data.labels, aug, device, **common)
    stored = resize_images(data.images, aug.size)  # JPEGs stored at the training size
    if pipeline == "nvjpeg":
        return loaders.NvjpegLoader(loaders.jpeg_bytes(stored, jpeg_quality), data.labels, aug, device,
                                    data.channels, **common)
    if pipeline in ("jpeg", "dali"):
        if pipeline == "dali":
            loaders.require_dali()
        folder = Path(workdir) / f"jpeg-q{jpeg_quality}-{aug.size[0]}x{aug.size[1]}-rank{place.rank}"
        paths = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
        if len(paths) != stored.shape[0]:  # a grid reuses the files its earlier runs wrote
            paths = loaders.write_jpegs(stored, folder, jpeg_quality)
        kind = loaders.JpegLoader if pipeline == "jpeg" else loaders.DaliLoader
        return kind(paths, data.labels, aug, device, data.channels, workers=workers, **common)
    raise UserError(f"--pipeline: unknown pipeline {pipeline!r} (choose from {', '.join(loaders.PIPELINES)})")


def evaluate(model, images: torch.Tensor, labels: torch.Tensor, aug: AugmentConfig, device, amp: bool,
             batch: int = 500) -> float:
    """Top-1 accuracy on test images (uint8, prepared once at the training size), no augmentation."""
    model.eval()
    correct = 0
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        for start in range(0, images.shape[0], batch):
            x = augment.normalize(images[start : start + batch].float().div_(255), aug)  # (B, C, H, W)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            correct += int((model(x).argmax(1) == labels[start : start + batch]).sum())
    model.train()
    return correct / max(images.shape[0], 1)


def train(loader, data: TrainData, aug: AugmentConfig, cfg: TrainConfig, device, progress: bool = True,
          check_shards: bool = False) -> dict:
    """Train a fresh ResNet-18 on ``loader`` for ``cfg.epochs``; returns per-epoch timings and accuracy."""
    device = torch.device(device)
    place = distributed.from_env()
    amp = cfg.amp if cfg.amp is not None else device.type == "cuda"
    torch.manual_seed(cfg.seed)
    model = prepare(resnet18(data.num_classes, data.channels, aug.size), device)
    if place.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    total_steps = cfg.epochs * len(loader)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / max(total_steps, 1))))
    test_x = resize_images(data.test_images, aug.size).to(device)  # (M, C, H, W) uint8
    test_y = data.test_labels.long().to(device)
    eval_aug = aug.evaluation()

    def step(images, labels) -> torch.Tensor:
        if device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        return loss.detach()

    # Warm-up: run a few steps through the real loader (workers start, kernels compile), then undo them.
    if cfg.warmup_batches:
        saved = (copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()),
                 copy.deepcopy(schedule.state_dict()))
        loader.set_epoch(10**6)
        for i, (images, labels) in enumerate(loader):
            if i >= cfg.warmup_batches:
                break
            step(images, labels)
        synchronize(device)
        model.load_state_dict(saved[0])
        optimizer.load_state_dict(saved[1])
        schedule.load_state_dict(saved[2])

    epochs, elapsed, time_to_target, shard_checks = [], 0.0, None, []
    for epoch in range(cfg.epochs):
        loader.set_epoch(epoch)
        losses = []
        with EpochTimer(device) as timer:
            batches = iter(loader)
            while True:
                try:
                    images, labels = next(batches)
                except StopIteration:
                    break
                timer.data_done()
                losses.append(step(images, labels))
                timer.step_done(int(labels.shape[0]))
        row = {"epoch": epoch + 1, **timer.result(),
               "train_loss": float(torch.stack(losses).float().mean()) if losses else None}
        elapsed += timer.wall
        row["elapsed_s"] = round(elapsed, 4)
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
            row["test_accuracy"] = evaluate(model, test_x, test_y, eval_aug, device, amp, cfg.eval_batch)
            if cfg.target_accuracy is not None and time_to_target is None and row["test_accuracy"] >= cfg.target_accuracy:
                time_to_target = elapsed
        if check_shards and hasattr(loader, "indices"):
            shard_checks.append(_check_shards(loader.indices(), getattr(loader, "n", 0), place.world))
        epochs.append(row)
        if progress and place.is_main:
            acc = f", test acc {row['test_accuracy']:.4f}" if "test_accuracy" in row else ""
            print(f"epoch {epoch + 1}/{cfg.epochs}: {row['wall_s']:.2f} s (data {row['data_s']:.2f} s, "
                  f"step {row['step_s']:.2f} s), {row['images_per_s']:.0f} img/s, loss {row['train_loss']:.4f}{acc}",
                  flush=True)
    walls = [e["wall_s"] for e in epochs]
    out = {
        "epochs": epochs,
        "total_wall_s": round(sum(walls), 4),
        "mean_epoch_s": round(sum(walls) / len(walls), 4),
        "data_s": round(sum(e["data_s"] for e in epochs), 4),
        "step_s": round(sum(e["step_s"] for e in epochs), 4),
        "cpu_core_s": round(sum(e["cpu_core_s"] for e in epochs), 3),
        "images_per_s": round(sum(e["images"] for e in epochs) / max(sum(walls), 1e-9), 2),
        "final_test_accuracy": epochs[-1].get("test_accuracy"),
        "time_to_target_s": round(time_to_target, 4) if time_to_target is not None else None,
        "target_accuracy": cfg.target_accuracy,
        "world_size": place.world,
        "model": {"name": "resnet18", "stem": stem_name(aug.size), "amp_bf16": amp,
                  "channels_last": device.type == "cuda"},
    }
    if shard_checks:
        out["shard_check"] = shard_checks
    return out


def _check_shards(mine: torch.Tensor, n: int, world: int) -> dict:
    """Gather every rank's sample indices for the epoch: are they disjoint, and do they cover it?"""
    parts = distributed.all_gather_1d(mine.long().contiguous())
    seen = torch.cat(parts)
    return {"per_rank": [int(p.numel()) for p in parts], "disjoint": int(seen.unique().numel()) == int(seen.numel()),
            "covered": int(seen.unique().numel()), "of": n, "left_out": n - int(seen.numel())}


def run_training(pipeline: str, data: TrainData, cfg: TrainConfig, size: tuple[int, int], device,
                 workers: int = 0, jpeg_quality: int = 90, aug_mode: str = "auto", progress: bool = True,
                 check_shards: bool = False, workdir: Path | None = None) -> dict:
    """Build the pipeline's loader and train; returns the results dict with the run's settings."""
    device = torch.device(device)
    place = distributed.from_env()
    aug = AugmentConfig(tuple(size), mode=aug_mode)
    with tempfile.TemporaryDirectory(prefix="rapidinr-train-") as tmp:
        loader = build_loader(pipeline, data, aug, device, workers, cfg, place, Path(workdir or tmp), jpeg_quality)
        result = train(loader, data, aug, cfg, device, progress, check_shards)
        del loader  # stop persistent workers before the JPEG folder goes away
    settings = {"pipeline": pipeline, "workers": workers, "device": str(device), "data": data.name,
                "train_images": int(data.labels.numel()), "test_images": int(data.test_labels.numel()),
                "size": list(size), "channels": data.channels, "classes": data.num_classes,
                "augment": aug.to_json(), "train": asdict(cfg),
                "jpeg_quality": jpeg_quality if pipeline in ("jpeg", "dali", "nvjpeg") else None}
    return {"settings": settings, **result}


def test_source_for(source: str) -> str | None:
    """The source whose test split goes with a named source a set was encoded from (``default`` →
    ``default:test``; ``cifar10-folder:DIR/train`` → ``cifar10-folder:DIR``, read with split test)."""
    name, _, rest = str(source).partition(":")
    rest = rest.split("[", 1)[0]  # a sharded encode notes its slice as SOURCE[a:b]
    if name == "default":
        return "default:test"
    if name in ("cifar10", "fashion-mnist", "flowers102") and rest:
        return f"{name}:{rest}"
    if name == "cifar10-folder" and rest:  # a set records its split's folder: cifar10-folder:DIR/train
        folder = Path(rest)
        return f"cifar10-folder:{folder.parent if folder.name in ('train', 'test') else folder}"
    return None


def load_train_data(spec: str, test_spec: str | None = None, limit: int | None = None,
                    test_limit: int | None = None, device="cpu", decode_inr: bool = False) -> TrainData:
    """A .rinr file or a SOURCE (see :func:`rapidinr.sources.datasets.load_source`) → :class:`TrainData`.

    For a .rinr file the test images come from ``test_spec``, else from the test split of the
    source it was encoded from. ``decode_inr`` also decodes the set to uint8 images, so that the
    pixel pipelines can train on the INR's reconstructions.
    """
    if test_limit is not None and test_limit < 1:  # load_source would name --limit
        raise UserError(f"--test-limit must be >= 1, got {test_limit}")
    if str(spec).endswith(".rinr"):
        if not Path(spec).is_file():
            raise UserError(f"{spec}: no such file")
        inrs = load(spec, device)
        if inrs.labels is None:
            raise UserError(f"{spec}: the .rinr file holds no labels; training needs labels "
                            "(encode a source with classes: class subfolders or a named dataset)")
        if len(inrs) == 0:
            raise UserError(f"{spec}: the .rinr file holds no images to train on")
        if limit is not None:
            inrs = _subset_inr(inrs, limit)
        test_spec = test_spec or test_source_for(inrs.meta.get("source", ""))
        if test_spec is None:
            raise UserError(f"{spec}: cannot tell which test images go with it "
                            f"(source {inrs.meta.get('source')!r}); pass --test SOURCE")
        test = load_source(test_spec, split="test", limit=test_limit)
        if test.labels is None or test.images.shape[1] != inrs.channels:  # checked before any training
            raise UserError(f"--test {test_spec}: needs labelled images with as many channels as {spec} "
                            f"({inrs.channels}; the test set has {test.images.shape[1]})")
        images = None
        if decode_inr:
            images = torch.cat([to_uint8(inrs.decode(torch.arange(s, min(s + 512, len(inrs))))).cpu()
                                for s in range(0, len(inrs), 512)])
        return TrainData(inrs.labels.cpu(), max(len(inrs.class_names), int(inrs.labels.max()) + 1), inrs.channels,
                         test.images, test.labels, images, inrs, str(spec))
    train_set = load_source(spec, split="train", limit=limit)
    if train_set.labels is None:
        raise UserError(f"source {spec!r} has no labels; training needs a labelled source")
    if len(train_set) == 0:
        raise UserError(f"source {spec!r} holds no images to train on")
    if test_spec is None:
        test_spec = test_source_for(spec)
        if test_spec is None:
            raise UserError(f"source {spec!r}: has no test split; pass --test SOURCE")
    test = load_source(test_spec, split="test", limit=test_limit)
    if test.labels is None or test.images.shape[1] != train_set.images.shape[1]:
        raise UserError(f"--test {test_spec}: needs labelled images with as many channels as the training set")
    classes = max(len(train_set.class_names), int(train_set.labels.max()) + 1)
    return TrainData(train_set.labels, classes, train_set.images.shape[1], test.images, test.labels,
                     train_set.images, None, str(spec))


def _subset_inr(inrs, limit: int):
    if limit < 1:
        raise UserError(f"--limit must be >= 1, got {limit}")
    rows = torch.arange(min(limit, len(inrs)), device=inrs.device)
    kept = inrs.store.gather(rows)  # (limit, P) float32 weights of the first images
    out = INRSet(kept, inrs.arch, inrs.height, inrs.width, inrs.labels[: rows.numel()], inrs.class_names,
                 inrs.psnr[: rows.numel()], inrs.meta)
    out.file_bytes = inrs.file_bytes
    return out
