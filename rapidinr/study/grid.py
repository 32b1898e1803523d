"""The Fig. 8 grid: every training pipeline × worker count × dataset, timed the same way.

Each run goes through :func:`rapidinr.training.loop.run_training`, whose
:class:`~rapidinr.training.timing.EpochTimer` splits data time from step time.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from rapidinr.codec.inrset import INRSet, load
from rapidinr.core.config import Arch
from rapidinr.core.errors import UserError
from rapidinr.core.siren import init_params
from rapidinr.encoding.runner import encode
from rapidinr.sources.datasets import load_sample_crops, load_source, parse_size
from rapidinr.training import loaders
from rapidinr.training.loop import TrainConfig, TrainData, run_training

# -- the Fig. 8 grid: pipelines × worker counts × datasets --------------------------------------------
PHOTOS = "photos"  # crops of scikit-image's photos, labelled by the photo they come from (offline, RGB)


def grid_arch(size: tuple[int, int]) -> str:
    """The paper's SIREN for a training size: 3x15 for CIFAR-sized images, 10x40 for ImageNet-sized."""
    side = max(size)
    return "3x15" if side <= 64 else ("10x32" if side <= 128 else "10x40")


def parse_grid_data(text: str):
    """``SOURCE@HxW[#ARCH]`` → (source, (H, W) or None, arch or None)."""
    body, _, arch = str(text).partition("#")
    source, at, size = body.rpartition("@")
    if not at:
        source, size = body, None
    if not source:
        raise UserError(f"--data {text!r}: expected SOURCE[@HxW][#ARCH], e.g. default@28x28 or photos@224x224")
    return source, parse_size(size) if size else None, arch or None


def load_grid_images(source: str, size, limit: int | None, split: str):
    """Labelled uint8 images for a grid entry: ``photos`` (crops labelled by photo) or any SOURCE."""
    if source == PHOTOS:
        size = size or (32, 32)
        count = limit or 1024
        crops = load_sample_crops(count, size, seed=0 if split == "train" else 1,
                                  downscale=4 if max(size) <= 96 else 1)
        labels = torch.arange(count) % 9  # crops cycle through the nine photos
        return crops.images, labels, 9
    data = load_source(source, size=size, split=split, limit=limit)
    if data.labels is None:
        raise UserError(f"--data {source}: has no labels (use a labelled source, or 'photos')")
    return data.images, data.labels, max(len(data.class_names), int(data.labels.max()) + 1)


@dataclass(frozen=True)
class GridConfig:
    """What the grid runs: pipelines × worker counts, and how each run trains."""

    pipelines: tuple[str, ...] = ("inr", "tensor", "jpeg")
    workers: tuple[int, ...] = (1,)  # DataLoader workers, for the pipelines that have them
    epochs: int = 1
    limit: int | None = 1024  # training images per entry
    test_limit: int | None = 500
    encode_steps: int = 100  # inr pipeline: Adam steps when the entry is encoded here (0: SIREN init)
    batch_size: int = 128
    jpeg_quality: int = 90
    warmup: int = 3  # batches before timing starts
    deadline: float | None = None  # a time.perf_counter() value; later runs are skipped

    def to_json(self) -> dict:
        out = asdict(self)
        out.pop("deadline")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def run_pipeline_grid(entries: list[str], grid: GridConfig, device="cpu", rinr: dict | None = None,
                      progress: bool = True) -> dict:
    """Time every pipeline (at every worker count where it has workers) on every dataset entry.

    For the inr pipeline each entry needs a .rinr: given in ``rinr`` (entry → path) or encoded here
    with ``grid.encode_steps`` Adam steps (the decode cost does not depend on how well the weights
    fit, so a short fit times honestly; its accuracy is then not meaningful). Returns
    ``{"rows": [...], "skipped": [...]}``. Runs that would start after ``grid.deadline`` are
    skipped and listed as such.
    """
    device = torch.device(device)
    rows, skipped = [], []
    scratch = tempfile.TemporaryDirectory(prefix="rapidinr-grid-")  # JPEG files, shared by the runs
    workdir = Path(scratch.name)
    cfg = TrainConfig(epochs=grid.epochs, batch_size=grid.batch_size, warmup_batches=grid.warmup)
    for entry in entries:
        source, size, arch = parse_grid_data(entry)
        images, labels, classes = load_grid_images(source, size, grid.limit, "train")
        test_images, test_labels, _ = load_grid_images(source, size, grid.test_limit, "test")
        size = size or tuple(images.shape[-2:])
        arch = arch or grid_arch(size)
        data = TrainData(labels, classes, images.shape[1], test_images, test_labels, images, None, entry)
        if "inr" in grid.pipelines:
            if rinr and entry in rinr:
                inrs = load(rinr[entry], device)
                fit_note = f"loaded {rinr[entry]}"
            elif grid.encode_steps == 0:  # timing only: decoding costs the same whatever the weights

                arch_obj = Arch.parse(arch, images.shape[1])
                inrs = INRSet(init_params(arch_obj, range(len(labels))), arch_obj, size[0], size[1],
                              labels).to(device)
                fit_note = "not fitted (SIREN init weights): timing only, accuracy not meaningful"
            else:
                start = time.perf_counter()
                inrs = encode(images, arch, steps=grid.encode_steps, device=device, labels=labels, progress=progress,
                              memory_budget_mb=4096 if device.type == "cuda" else 1024)
                fit_note = f"encoded here, {grid.encode_steps} steps, {time.perf_counter() - start:.1f} s"
            data.inrs = inrs
            finite = inrs.psnr[torch.isfinite(inrs.psnr)]
            psnr = float(finite.mean()) if finite.numel() else float("nan")
        for pipeline in grid.pipelines:
            counts = grid.workers if pipeline in loaders.WORKER_PIPELINES else [0]
            for count in counts:
                reason = _skip_reason(pipeline, count, device)
                if reason is None and grid.deadline is not None and time.perf_counter() > grid.deadline:
                    reason = "time budget spent"
                if reason:
                    skipped.append({"data": entry, "pipeline": pipeline, "workers": count, "reason": reason})
                    continue
                if progress:
                    print(f"[grid] {entry} {pipeline} workers={count}", flush=True)
                result = run_training(pipeline, data, cfg, size, device, count, grid.jpeg_quality, progress=False,
                                      workdir=workdir / f"data{entries.index(entry)}")
                row = {"data": entry, "size": list(size), "pipeline": pipeline, "workers": count,
                       **{k: result[k] for k in ("total_wall_s", "mean_epoch_s", "data_s", "step_s",
                                                 "cpu_core_s", "images_per_s", "final_test_accuracy")},
                       "epochs": result["epochs"], "train_images": int(labels.numel())}
                if pipeline == "inr":
                    row.update(arch=inrs.arch.name, inr_psnr=round(psnr, 3) if psnr == psnr else None, inr_fit=fit_note)
                rows.append(row)
                if progress:
                    print(f"[grid]   {row['total_wall_s']:.2f} s, {row['images_per_s']:.0f} img/s, "
                          f"data {row['data_s']:.2f} s, step {row['step_s']:.2f} s, {row['cpu_core_s']:.1f} CPU core-s",
                          flush=True)
    scratch.cleanup()
    return {"rows": rows, "skipped": skipped}


def _skip_reason(pipeline: str, workers: int, device: torch.device) -> str | None:
    if pipeline == "nvjpeg" and device.type != "cuda":
        return "nvjpeg needs a CUDA GPU"
    if pipeline == "dali" and not loaders.dali_available():
        return f"DALI not installed ({loaders.DALI_INSTALL})"
    return None
