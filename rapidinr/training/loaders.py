"""Five loaders that yield ``(images, labels)`` on the training device under one augmentation contract.

- ``inr``: the whole :class:`~rapidinr.codec.inrset.INRSet` on the device; each batch is decoded
  straight at the training size, crop and flip folded into each image's coordinate grid.
- ``tensor``: raw uint8 images already on the device, augmented in batches (the airbench ideal).
- ``jpeg``: a torch DataLoader over JPEG files: N workers decode (libjpeg-turbo) and crop/flip on
  the CPU, pinned memory, persistent workers, prefetching: the paper's PyTorch pipeline, tuned.
- ``dali``: an NVIDIA DALI pipeline (mixed GPU decoding on a GPU, CPU-only without one).
- ``nvjpeg``: torchvision's batched ``decode_jpeg`` on the GPU (GPU only).

Every loader: ``len(loader)`` batches per epoch, ``set_epoch(e)``, iteration yields float
images (B, C, H, W) normalized, and int64 labels (B,), both on ``device``. Under DDP each rank
takes its slice of one shared-seed permutation (:func:`epoch_indices`).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from rapidinr.codec.classical import encode_jpeg
from rapidinr.core.errors import UserError
from rapidinr.sources.images import resize_images
from rapidinr.training import augment
from rapidinr.training.augment import AugmentConfig

PIPELINES = ("inr", "tensor", "jpeg", "dali", "nvjpeg")
WORKER_PIPELINES = ("jpeg", "dali")  # the pipelines whose speed depends on CPU workers
# torchvision 0.29 marks its image codecs deprecated (in favour of TorchCodec); they are still the
# libjpeg-turbo / nvJPEG decoders the jpeg and nvjpeg pipelines are about, so the notice is muted.
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                        category=DeprecationWarning)
DALI_INSTALL = "pip install 'rapidinr[dali]' (the nvidia-dali-cuda130 wheel; nvidia-dali-cuda120 for CUDA 12)"


def epoch_indices(n: int, epoch: int, seed: int, shuffle: bool = True, rank: int = 0,
                  world: int = 1) -> torch.Tensor:
    """This rank's sample order for ``epoch``: its slice of one permutation all ranks share.

    Every rank draws the same permutation (seeded by ``seed`` and ``epoch``) and takes the
    ``rank``-th of ``world`` equal contiguous slices; the last ``n % world`` samples of the
    permutation (different ones each epoch) are left out so that every rank runs the same number
    of steps. (n // world,) int64 on the CPU.
    """
    if shuffle:
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=generator)
    else:
        order = torch.arange(n)
    per_rank = n // world
    return order[rank * per_rank : (rank + 1) * per_rank]


class _IndexedLoader:
    """Shared batching: the epoch's indices cut into batches, augmentation seeds per epoch."""

    def __init__(self, n: int, batch_size: int, aug: AugmentConfig, device, shuffle: bool, drop_last: bool,
                 seed: int, rank: int, world: int):
        self.n, self.batch_size, self.aug = n, int(batch_size), aug
        self.device = torch.device(device)
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed
        self.rank, self.world = rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> torch.Tensor:
        return epoch_indices(self.n, self.epoch, self.seed, self.shuffle, self.rank, self.world)

    def __len__(self) -> int:
        per_rank = self.n // self.world
        return per_rank // self.batch_size if self.drop_last else -(-per_rank // self.batch_size)

    def _batches(self):
        order = self.indices()
        generator = torch.Generator().manual_seed(self.seed * 7919 + self.epoch * 104_729 + self.rank)
        for b in range(len(self)):
            rows = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield rows, augment.sample_boxes(rows.numel(), self.aug, generator)


class InrLoader(_IndexedLoader):
    """Batches decoded from an INRSet on its device, augmented inside the coordinate grid."""

    name = "inr"

    def __init__(self, inrs, aug: AugmentConfig, batch_size: int = 128, shuffle: bool = True,
                 drop_last: bool = False, seed: int = 0, rank: int = 0, world: int = 1,
                 memory_budget_mb: float = 512):
        if inrs.labels is None:
            raise UserError("the .rinr file holds no labels; training needs a labelled set "
                            "(encode a source with classes: a folder of class subfolders or a named dataset)")
        super().__init__(len(inrs), batch_size, aug, inrs.device, shuffle, drop_last, seed, rank, world)
        self.inrs, self.memory_budget_mb = inrs, memory_budget_mb

    def decode(self, rows: torch.Tensor, boxes: augment.Boxes) -> torch.Tensor:
        """Decode images ``rows`` (CPU int64 (B,)) through their boxes → normalized (B, C, H, W), channels-last memory."""
        h, w = self.aug.size
        coords = augment.box_coords(boxes, self.aug.size, device=self.device)  # (B, H*W, 2)
        flat = self.inrs.decode_at(rows, coords, self.memory_budget_mb)  # (B, H*W, C); rows on the CPU
        if self.aug.resolved_mode == "pad-crop":
            flat.mul_(augment.inside(coords))  # the padding is black, as in the pixel pipelines
        images = flat.view(-1, h, w, flat.shape[-1]).permute(0, 3, 1, 2)  # (B, C, H, W), NHWC memory
        return augment.normalize(images, self.aug)

    def __iter__(self):
        labels = self.inrs.labels
        for rows, boxes in self._batches():
            rows = rows.pin_memory() if self.device.type == "cuda" else rows  # copied without a sync
            rows_dev = augment.to_device(rows, self.device)  # no host sync
            # CPU rows to decode: INRSet checks their range on the CPU, no host sync per batch
            yield self.decode(rows, boxes), labels.index_select(0, rows_dev)


class TensorLoader(_IndexedLoader):
    """Raw uint8 images (N, C, H, W) at the training size on the device, augmented in batches."""

    name = "tensor"

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, aug: AugmentConfig, device,
                 batch_size: int = 128, shuffle: bool = True, drop_last: bool = False, seed: int = 0,
                 rank: int = 0, world: int = 1):
        super().__init__(images.shape[0], batch_size, aug, device, shuffle, drop_last, seed, rank, world)
        self.images = resize_images(images, aug.size).to(self.device)  # (N, C, H, W) uint8, one transfer
        self.labels = labels.long().to(self.device)

    def __iter__(self):
        for rows, boxes in self._batches():
            rows_dev = augment.to_device(rows, self.device)  # no host sync
            batch = self.images.index_select(0, rows_dev)  # (B, C, H, W) uint8
            images = augment.apply_pixels(batch, boxes, self.aug.size)  # CPU boxes
            yield augment.normalize(images, self.aug), self.labels.index_select(0, rows_dev)


# -- JPEG files: the baseline's storage ------------------------------------------------------------
def write_jpegs(images: torch.Tensor, folder: Path, quality: int = 90) -> list[Path]:
    """Write uint8 images (N, C, H, W) as ``folder/NNNNNN.jpg`` at a JPEG ``quality`` (Pillow,
    4:2:0 subsampling for colour as Pillow's default). Returns the paths in index order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, data in enumerate(jpeg_bytes(images, quality)):
        path = folder / f"{i:06d}.jpg"
        path.write_bytes(data)
        paths.append(path)
    return paths


def jpeg_bytes(images: torch.Tensor, quality: int) -> list[bytes]:
    """Each uint8 image (N, C, H, W) encoded as a JPEG at ``quality`` (in memory; Pillow's default
    tables and 4:2:0, through the project's one JPEG encoder)."""
    return [encode_jpeg(image, quality, "4:2:0", optimize=False) for image in images]


class _JpegFiles(torch.utils.data.Dataset):
    """JPEG files decoded on the CPU (torchvision.io, libjpeg-turbo), cropped and flipped per sample."""

    def __init__(self, paths, labels, aug: AugmentConfig, channels: int):
        self.paths = [str(p) for p in paths]
        self.labels = labels.long()
        self.aug, self.channels = aug, channels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        from torchvision.io import ImageReadMode, decode_jpeg, read_file

        mode = ImageReadMode.GRAY if self.channels == 1 else ImageReadMode.RGB
        image = decode_jpeg(read_file(self.paths[i]), mode=mode)  # (C, h, w) uint8
        image = resize_images(image[None], self.aug.size)  # no-op when stored at the training size
        boxes = augment.sample_boxes(1, self.aug)  # torch's RNG: seeded per worker by the DataLoader
        pixels = augment.apply_pixels(image, boxes, self.aug.size)[0]  # (C, H, W) float on [0, 1]
        return (pixels * 255).round_().to(torch.uint8), self.labels[i]  # uint8 crosses to the device: 4× less


class _EpochSlice(torch.utils.data.Sampler):
    def __init__(self, loader: "JpegLoader"):
        self.loader = loader

    def __iter__(self):
        return iter(self.loader.indices().tolist())

    def __len__(self) -> int:
        return self.loader.n // self.loader.world


class JpegLoader(_IndexedLoader):
    """The PyTorch pipeline: DataLoader, ``workers`` processes, pinned memory, persistent workers."""

    name = "jpeg"

    def __init__(self, paths, labels: torch.Tensor, aug: AugmentConfig, device, channels: int,
                 workers: int = 1, batch_size: int = 128, shuffle: bool = True, drop_last: bool = False,
                 seed: int = 0, rank: int = 0, world: int = 1, prefetch_factor: int = 4):
        super().__init__(len(paths), batch_size, aug, device, shuffle, drop_last, seed, rank, world)
        self.workers = int(workers)
        pin = self.device.type == "cuda"
        extra = {"persistent_workers": True, "prefetch_factor": prefetch_factor} if workers > 0 else {}
        generator = torch.Generator().manual_seed(seed + rank)
        self.loader = torch.utils.data.DataLoader(
            _JpegFiles(paths, labels, aug, channels), batch_size=self.batch_size, sampler=_EpochSlice(self),
            num_workers=self.workers, pin_memory=pin, drop_last=drop_last, generator=generator, **extra)

    def __iter__(self):
        for images, labels in self.loader:
            images = images.to(self.device, non_blocking=True).float().div_(255)  # (B, C, H, W)
            yield augment.normalize(images, self.aug), labels.to(self.device, non_blocking=True)


# -- nvJPEG: torchvision's GPU decoder -------------------------------------------------------------
class NvjpegLoader(_IndexedLoader):
    """Encoded JPEG bytes in host memory; each batch decoded on the GPU by ``decode_jpeg(device=...)``."""

    name = "nvjpeg"

    def __init__(self, encoded: list[bytes], labels: torch.Tensor, aug: AugmentConfig, device, channels: int,
                 batch_size: int = 128, shuffle: bool = True, drop_last: bool = False, seed: int = 0,
                 rank: int = 0, world: int = 1):
        device = torch.device(device)
        if device.type != "cuda":
            raise UserError("--pipeline nvjpeg decodes on a CUDA GPU; this run's device is "
                            f"{device} (use jpeg or dali on the CPU)")
        super().__init__(len(encoded), batch_size, aug, device, shuffle, drop_last, seed, rank, world)
        self.encoded = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in encoded]
        self.labels = labels.long().to(device)
        self.channels = channels

    def __iter__(self):
        from torchvision.io import ImageReadMode, decode_jpeg

        mode = ImageReadMode.GRAY if self.channels == 1 else ImageReadMode.RGB
        for rows, boxes in self._batches():
            data = [self.encoded[i] for i in rows.tolist()]
            decoded = decode_jpeg(data, mode=mode, device=self.device)  # list of (C, h, w) uint8
            batch = resize_images(torch.stack(decoded), self.aug.size)  # (B, C, H, W)
            images = augment.apply_pixels(batch, boxes, self.aug.size)  # CPU boxes
            yield augment.normalize(images, self.aug), self.labels.index_select(0, augment.to_device(rows, self.device))


# -- DALI ------------------------------------------------------------------------------------------
def dali_available() -> bool:
    try:
        import nvidia.dali  # noqa: F401
    except Exception:  # ImportError, or a broken CUDA runtime under it
        return False
    return True


def require_dali() -> None:
    if not dali_available():
        raise UserError(f"--pipeline dali needs NVIDIA DALI, which is not installed: {DALI_INSTALL}")


def dali_offsets(pad: int):
    """A DALI op drawing one whole-pixel pad-crop offset per sample, uniform over -pad..pad:
    drawn from the discrete values themselves (a continuous uniform over [-pad, pad + 1) cast to
    int reached pad + 1, with uneven weights at the two ends)."""
    from nvidia.dali import fn, types

    return fn.random.uniform(values=list(range(-pad, pad + 1)), dtype=types.INT32)


def shuffled_files(files: list, labels: list, seed: int) -> tuple[list, list]:
    """The file list in one seeded random order (the same on every rank): DALI's reader then
    starts from a true permutation, not its buffered shuffle over files sorted by class."""
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed)).tolist()
    return [files[i] for i in order], [labels[i] for i in order]


class DaliLoader:
    """An NVIDIA DALI pipeline over the JPEG files: reader, decoder (``mixed`` on a GPU, ``cpu``
    without one), per-sample crop (pad-crop via ``slice`` with zero fill, or ``random_resized_crop``),
    per-sample ``coin_flip`` mirror, normalization. ``workers`` is DALI's CPU thread count.

    Epochs: the reader pads its last batch (``pad_last_batch``), so every epoch starts at a
    reader epoch and covers each of the rank's images once; the files start in a seeded
    permutation and are reshuffled globally after each epoch (``shuffle_after_epoch``, the same
    order on every rank, as a DistributedSampler). An iteration left early (the training loop's
    warm-up) is run to the end of its reader epoch before the next one starts."""

    name = "dali"

    def __init__(self, paths, labels: torch.Tensor, aug: AugmentConfig, device, channels: int,
                 workers: int = 1, batch_size: int = 128, shuffle: bool = True, drop_last: bool = False,
                 seed: int = 0, rank: int = 0, world: int = 1):
        require_dali()
        self.device = torch.device(device)
        self.aug, self.batch_size, self.workers = aug, int(batch_size), int(max(workers, 1))
        self.n = len(paths) // world * world
        self.world, self.rank, self.drop_last = world, rank, drop_last
        files, classes = [str(p) for p in paths][: self.n], [int(v) for v in labels][: self.n]
        if shuffle:
            files, classes = shuffled_files(files, classes, seed)
        self.pipe = self._build(files, classes, channels, shuffle, seed)
        self.pipe.build()
        self.left_in_epoch = 0  # reader batches of an abandoned epoch still to run through

    def _build(self, files, labels, channels, shuffle, seed):
        from nvidia.dali import fn, pipeline_def, types

        gpu = self.device.type == "cuda"
        h, w = self.aug.size
        mode = self.aug.resolved_mode
        scale = 255.0
        device_id = (self.device.index or 0) if gpu else None

        @pipeline_def(batch_size=self.batch_size, num_threads=self.workers, device_id=device_id,
                      seed=seed * 7919 + self.rank + 1, prefetch_queue_depth=2)
        def pipe():
            jpegs, label = fn.readers.file(files=files, labels=labels, shuffle_after_epoch=shuffle,
                                           shard_id=self.rank, num_shards=self.world,
                                           pad_last_batch=True, name="reader", seed=seed + 1)
            out_type = types.GRAY if channels == 1 else types.RGB
            if mode == "resized-crop":
                images = fn.decoders.image_random_crop(
                    jpegs, device="mixed" if gpu else "cpu", output_type=out_type,
                    random_area=list(self.aug.scale), random_aspect_ratio=list(self.aug.ratio))
                images = fn.resize(images, resize_x=w, resize_y=h, interp_type=types.INTERP_LINEAR,
                                   antialias=False)
            else:
                images = fn.decoders.image(jpegs, device="mixed" if gpu else "cpu", output_type=out_type)
                images = fn.resize(images, resize_x=w, resize_y=h)  # no-op at the stored size
                if mode == "pad-crop":
                    pad_h, pad_w = self.aug.pad
                    dy, dx = dali_offsets(pad_h), dali_offsets(pad_w)
                    anchor = fn.stack(fn.cast(dy, dtype=types.FLOAT), fn.cast(dx, dtype=types.FLOAT))
                    images = fn.slice(images, anchor, fn.constant(fdata=[float(h), float(w)]),
                                      axes=[0, 1], normalized_anchor=False, normalized_shape=False,
                                      out_of_bounds_policy="pad", fill_values=0)
            mirror = fn.random.coin_flip(probability=self.aug.flip)
            images = fn.crop_mirror_normalize(
                images, dtype=types.FLOAT, output_layout="CHW", mirror=mirror,
                mean=[self.aug.mean * scale] * channels, std=[self.aug.std * scale] * channels)
            return images, label

        return pipe()

    def set_epoch(self, epoch: int) -> None:
        """The reader's order is its own (seeded, reshuffled after every epoch); each iteration is
        one reader epoch, so nothing to set: the epochs stay aligned however many are run."""

    def __len__(self) -> int:
        per_rank = self.n // self.world
        return per_rank // self.batch_size if self.drop_last else -(-per_rank // self.batch_size)

    def __iter__(self):
        from nvidia.dali.backend import TensorListCPU

        for _ in range(self.left_in_epoch):  # the rest of an epoch an earlier iteration left
            self.pipe.run()
        per_rank = self.n // self.world
        batches = -(-per_rank // self.batch_size)  # reader batches in one epoch, the last one padded
        self.left_in_epoch = batches
        left = per_rank if not self.drop_last else len(self) * self.batch_size
        while self.left_in_epoch:
            images, labels = self.pipe.run()
            self.left_in_epoch -= 1
            take = min(left, self.batch_size)
            left -= take
            if take <= 0:  # drop_last: the partial batch is run (the reader's epoch ends) but not yielded
                continue
            if isinstance(images, TensorListCPU):
                x = torch.from_numpy(images.as_array())[:take].to(self.device, non_blocking=True)
            else:  # mixed decoding left the batch on the GPU: hand it over there
                x = dali_gpu_tensor(images, self.device)[:take]
            if not isinstance(labels, TensorListCPU):
                labels = labels.as_cpu()
            y = torch.from_numpy(labels.as_array()).reshape(-1)[:take].long().to(self.device)
            yield x, y


def dali_gpu_tensor(tensor_list, device) -> torch.Tensor:
    """A DALI GPU TensorList → torch tensor on the device without a host round trip."""
    from nvidia.dali.plugin.pytorch import feed_ndarray

    dense = tensor_list.as_tensor()
    out = torch.empty(dense.shape(), dtype=torch.float32, device=device)
    feed_ndarray(dense, out, cuda_stream=torch.cuda.current_stream(device))
    return out


def check_workers(pipeline: str, workers: int | None) -> int:
    """Validate ``--workers`` for a pipeline; returns the count to use."""
    cores = os.cpu_count() or 1
    if workers is None:
        return 1 if pipeline in WORKER_PIPELINES else 0
    if workers < 0:
        raise UserError(f"--workers must be >= 0, got {workers}")
    if pipeline not in WORKER_PIPELINES:
        if workers:
            raise UserError(f"--workers: the {pipeline} pipeline prepares batches on the device and uses "
                            f"no CPU workers (only {' and '.join(WORKER_PIPELINES)} do); drop --workers")
        return 0
    if workers > 4 * cores:
        raise UserError(f"--workers {workers}: this machine has {cores} CPU cores; more than "
                        f"{4 * cores} workers only adds contention")
    if pipeline == "dali" and workers == 0:
        raise UserError("--workers: DALI needs at least 1 thread")
    return workers
