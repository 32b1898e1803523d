"""The sharded encode under ``torchrun``: each rank encodes a contiguous run of whole chunks to
its own shard file, and rank 0 merges the shards into one ``.rinr`` that equals a
single-process encode (image i is seeded by its global index, and a chunk holds the same images
either way). The merge streams: one shard's weights in memory at a time, written straight into
the file; the ranks wait for it on a group whose barriers outlast any merge.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from rapidinr.codec.inrset import file_summary, load, write_set
from rapidinr.codec.store import DenseStore
from rapidinr.core.distributed import barrier, finish, init, local_device, waiting_group
from rapidinr.core.errors import UserError
from rapidinr.encoding.fit import chunk_size_for
from rapidinr.encoding.runner import encode_file
from rapidinr.sources.datasets import ImageSet

SHARD_WAIT_S = 7 * 24 * 3600  # how long a rank waits for the others (their shards, rank 0's merge): no
#                               encode or merge is cut short; a rank that dies ends the job through torchrun


def shard_range(n: int, chunk: int, rank: int, world: int) -> tuple[int, int]:
    """Rank ``rank``'s contiguous run of whole chunks of ``n`` images: (start, stop)."""
    chunks = -(-n // chunk)
    per, extra = divmod(chunks, world)
    first = rank * per + min(rank, extra)
    count = per + (1 if rank < extra else 0)
    return min(first * chunk, n), min((first + count) * chunk, n)


def shard_path(out: Path, rank: int, world: int) -> Path:
    return Path(out).with_name(f"{Path(out).name}.shard-{rank:03d}-of-{world:03d}.rinr")


def encode_sharded(images, out: Path, arch, cfg, device, labels=None, class_names=None, source: str = "",
                   overwrite: bool = False, progress: bool = True, learned_init=None) -> dict | None:
    """Encode this rank's shard to its own file; rank 0 then merges every shard into ``out``.

    learned_init: ``init`` of :func:`rapidinr.encoding.runner.encode` (one learned init shared by every rank).

    Returns the merged file's summary (:func:`merge_shards`) on rank 0, None elsewhere.
    """
    place = init(torch.device("cpu"))  # gloo: only barriers cross the processes
    waits = waiting_group(SHARD_WAIT_S)  # the job's group may have been made with a short timeout
    device = local_device(device, place)
    out = Path(out)
    n = images.shape[0]
    chunk = chunk_size_for(arch, images.shape[2] * images.shape[3], cfg)
    start, stop = shard_range(n, chunk, place.rank, place.world)
    # image i is seeded by cfg.seed + i: a shard starting at `start` shifts its seed by `start`
    shard_cfg = dataclasses.replace(cfg, seed=cfg.seed + start, chunk_size=chunk)
    part = shard_path(out, place.rank, place.world)
    shard_labels = labels[start:stop] if labels is not None else None
    if stop > start:
        shard = ImageSet(images[start:stop], shard_labels, list(class_names or []), source=f"{source}[{start}:{stop}]")
        encode_file(shard, part, arch, shard_cfg, device, overwrite=True, progress=progress and place.is_main,
                    init=learned_init, steps=cfg.steps, lr=cfg.lr)  # cfg is the caller's final choice
    barrier(waits)
    merged = None
    if place.is_main:
        merged = merge_shards([shard_path(out, r, place.world) for r in range(place.world)
                               if shard_range(n, chunk, r, place.world)[1] > shard_range(n, chunk, r, place.world)[0]],
                              out, cfg, source, overwrite)
    barrier(waits)
    finish()
    return merged


def merge_shards(paths: list[Path], out: Path, cfg, source: str, overwrite: bool = False) -> dict:
    """Concatenate shard files (in rank order) into one ``.rinr``; the shards are then removed.

    Streams: a first pass reads each shard in turn (verified) for what is small (labels, PSNR,
    header), then the file is written from the shards' weights read again one shard at a time
    (:func:`~rapidinr.codec.inrset.write_set` of a chunked ``FileForm``), so memory holds one
    shard's weights at a time, never the set. Returns the merged file's summary
    (:func:`~rapidinr.codec.inrset.file_summary`)."""
    if Path(out).exists() and not overwrite:
        raise UserError(f"{out}: already exists (pass --overwrite to replace it)")
    shape, sizes, labels, psnr, meta = None, [], [], [], {}
    for path in paths:  # pass 1: everything but the weights
        shard = load(path)
        if shape is None:  # the first shard's facts (not the shard: it would stay in memory)
            shape = (shard.arch, shard.height, shard.width, shard.labels is not None, shard.class_names)
            meta = dict(shard.meta)
            meta.update(refits=0, encode_seconds=0.0)
        elif (shard.arch, shard.height, shard.width) != shape[:3]:
            raise UserError(f"{out}: shards disagree on architecture or image size")
        sizes.append(len(shard))
        if shape[3]:
            labels.append(shard.labels)
        psnr.append(shard.psnr)
        meta["refits"] += int(shard.meta.get("refits", 0))
        meta["encode_seconds"] = max(meta["encode_seconds"], float(shard.meta.get("encode_seconds", 0)))
        del shard
    arch, height, width, has_labels, class_names = shape
    meta.update(source=source, fit={**meta.get("fit", {}), "seed": cfg.seed}, shards=len(paths))

    def shards():  # one shard's weights at a time
        for path, size in zip(paths, sizes):
            weights = load(path).dense_params()  # (n_shard, P)
            if len(weights) != size:
                raise UserError(f"{path}: the shard changed during the merge")
            yield DenseStore(weights)

    psnr = torch.cat(psnr)  # (N,)
    form = DenseStore(torch.zeros(0, arch.n_params)).file_form(shards)
    file_bytes = write_set(out, form, arch, height, width, torch.cat(labels) if has_labels else None, class_names,
                           psnr, meta)
    for path in paths:
        Path(path).unlink(missing_ok=True)
    return file_summary(len(psnr), height, width, file_bytes, psnr)
