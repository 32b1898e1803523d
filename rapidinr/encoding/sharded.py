"""The sharded encode under ``torchrun``: each rank encodes a contiguous run of whole chunks to
its own shard file, and rank 0 merges the shards into one ``.rinr`` that equals a
single-process encode (image i is seeded by its global index, and a chunk holds the same images
either way).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from rapidinr.codec.inrset import INRSet, load
from rapidinr.codec.store import DenseStore
from rapidinr.core.distributed import barrier, finish, init, local_device
from rapidinr.core.errors import UserError
from rapidinr.encoding.fit import chunk_size_for
from rapidinr.encoding.runner import encode_to_file
from rapidinr.sources.datasets import ImageSet


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
                   overwrite: bool = False, progress: bool = True, learned_init=None):
    """Encode this rank's shard to its own file; rank 0 then merges every shard into ``out``.

    learned_init: ``init`` of :func:`rapidinr.encoding.runner.encode` (one learned init shared by every rank).

    Returns the merged INRSet on rank 0 and this rank's shard set elsewhere.
    """
    place = init(torch.device("cpu"))  # gloo: only barriers cross the processes
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
        encode_to_file(shard, part, arch, shard_cfg, device, overwrite=True, progress=progress and place.is_main,
                       init=learned_init, steps=cfg.steps, lr=cfg.lr)  # cfg is the caller's final choice
    barrier()
    merged = None
    if place.is_main:
        merged = merge_shards([shard_path(out, r, place.world) for r in range(place.world)
                               if shard_range(n, chunk, r, place.world)[1] > shard_range(n, chunk, r, place.world)[0]],
                              out, cfg, source, overwrite)
    barrier()
    finish()
    return merged


def merge_shards(paths: list[Path], out: Path, cfg, source: str, overwrite: bool = False):
    """Concatenate shard files (in rank order) into one ``.rinr``; the shards are then removed."""
    if Path(out).exists() and not overwrite:
        raise UserError(f"{out}: already exists (pass --overwrite to replace it)")
    sets = [load(p) for p in paths]
    first = sets[0]
    if any(s.arch != first.arch or (s.height, s.width) != (first.height, first.width) for s in sets):
        raise UserError(f"{out}: shards disagree on architecture or image size")
    params = torch.cat([s.dense_params() for s in sets])  # (N, P)
    labels = torch.cat([s.labels for s in sets]) if first.labels is not None else None
    psnr = torch.cat([s.psnr for s in sets])
    meta = dict(first.meta)
    meta.update(source=source, fit={**meta.get("fit", {}), "seed": cfg.seed},
                refits=sum(int(s.meta.get("refits", 0)) for s in sets),
                encode_seconds=max(float(s.meta.get("encode_seconds", 0)) for s in sets),
                shards=len(sets))
    merged = INRSet(DenseStore(params), first.arch, first.height, first.width, labels, first.class_names,
                    psnr, meta)
    merged.save(out)
    for p in paths:
        Path(p).unlink(missing_ok=True)
    return merged
