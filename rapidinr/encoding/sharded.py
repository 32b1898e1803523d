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
from rapidinr.core.distributed import barrier, finish, init, local_device, waiting_group
from rapidinr.core.errors import UserError
from rapidinr.encoding.compress import RoundTotals
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
                   overwrite: bool = False, progress: bool = True, learned_init=None, compression=None) -> dict | None:
    """Encode this rank's shard to its own file; rank 0 then merges every shard into ``out``.

    learned_init: ``init`` of :func:`rapidinr.encoding.runner.encode` (one learned init shared by every rank).
    compression: a :class:`~rapidinr.encoding.compress.CompressConfig` each rank runs on its own chunks
    (pruning, quantization, zstd: all per image); not the compact store, whose bit allocation sees
    the whole set at once.

    Returns the merged file's summary (:func:`merge_shards`) on rank 0, None elsewhere.
    """
    if compression is not None and compression.compact is not None:
        raise UserError("the compact store allocates its bits over the whole set: encode it in one process "
                        "(drop torchrun or --preset)")
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
                    init=learned_init, steps=cfg.steps, lr=cfg.lr,  # cfg is the caller's final choice
                    compression=compression)
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
    header), then the file is written from the shards' stores read again one shard at a time
    (:func:`~rapidinr.codec.inrset.write_set` of a chunked ``FileForm``: dense, or pruned and
    quantized, the mask coded over the whole set), so memory holds one shard at a time, never the
    set. Returns the merged file's summary (:func:`~rapidinr.codec.inrset.file_summary`)."""
    if Path(out).exists() and not overwrite:
        raise UserError(f"{out}: already exists (pass --overwrite to replace it)")
    shape, sizes, labels, psnr, metas = None, [], [], [], []
    for path in paths:  # pass 1: everything but the weights
        shard = load(path)
        layout = (shard.arch, shard.height, shard.width, shard.store.encoding,
                  shard.meta.get("compression"))
        if shape is None:  # the first shard's facts (not the shard: it would stay in memory)
            shape, like = layout, shard.store.with_rows(0)
            has_labels, class_names = shard.labels is not None, shard.class_names
        elif layout[:4] != shape[:4] or _settings(layout[4]) != _settings(shape[4]):
            raise UserError(f"{out}: shards disagree on architecture, image size or compression")
        sizes.append(len(shard))
        if has_labels:
            labels.append(shard.labels)
        psnr.append(shard.psnr)
        metas.append(shard.meta)
        del shard
    arch, height, width = shape[:3]
    meta = merged_meta(metas, sizes)
    meta.update(source=source, fit={**meta.get("fit", {}), "seed": cfg.seed}, shards=len(paths))

    def shards():  # one shard's store at a time
        for path, size in zip(paths, sizes):
            store = load(path).store
            if len(store) != size:
                raise UserError(f"{path}: the shard changed during the merge")
            yield store

    psnr = torch.cat(psnr)  # (N,)
    file_bytes = write_set(out, like.file_form(shards), arch, height, width, torch.cat(labels) if has_labels else None,
                           class_names, psnr, meta)
    for path in paths:
        Path(path).unlink(missing_ok=True)
    return file_summary(len(psnr), height, width, file_bytes, psnr)


def _settings(compression: dict | None) -> dict | None:
    """A shard's compression settings, without its measured rounds."""
    return None if compression is None else {k: v for k, v in compression.items() if k != "rounds"}


def merged_meta(metas: list[dict], sizes: list[int]) -> dict:
    """The shards' header meta as one file's: refits and chunk counts summed, the encode's seconds
    the slowest shard's (they ran side by side), each compression round's means weighted by the
    shards' images and its seconds summed, as chunks' are in one process (:class:`RoundTotals`)."""
    meta = dict(metas[0])
    meta["refits"] = sum(int(m.get("refits", 0)) for m in metas)
    meta["encode_seconds"] = max(float(m.get("encode_seconds", 0)) for m in metas)
    for key in ("resumed_chunks", "resumed_compressed_chunks"):
        if key in meta:
            meta[key] = sum(int(m.get(key, 0)) for m in metas)
    if meta.get("compression"):
        totals = RoundTotals()
        for m, size in zip(metas, sizes):
            totals.add_merged(m["compression"]["rounds"], size)
        rounds = totals.merged()
        meta["compression"] = {**meta["compression"], "rounds": rounds}
    return meta
