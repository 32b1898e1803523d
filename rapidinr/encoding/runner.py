"""From images to an INRSet: the public ``encode`` and the resumable, checkpointed file encoder."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import shutil
import time
from pathlib import Path

import torch

from rapidinr.codec import fileformat
from rapidinr.codec.inrset import INRSet, check_arch_size, check_finite, check_labels, file_summary, load, write_set
from rapidinr.codec.measure import measure_set
from rapidinr.codec.store import DenseStore, PackedStore
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.devices import resolve_device
from rapidinr.core.errors import UserError
from rapidinr.core.files import remove_stale_temporaries, write_atomic
from rapidinr.core.threads import encoder_threads
from rapidinr.encoding.compress import (
    CompressedChunk,
    RoundTotals,
    compress,
    compress_chunk,
    empty_store,
    passes,
    round_stats,
)
from rapidinr.encoding.fit import chunk_size_for, fit, image_bar
from rapidinr.encoding.learned_init import fit_settings, resolve_init
from rapidinr.sources.datasets import ImageSet

GPU_MEMORY_SHARE = 0.5  # of the device's free memory, for one chunk's fit (the rest: decoding, other work)


def device_chunking(cfg: FitConfig, arch: Arch, pixels: int, device) -> FitConfig:
    """``cfg`` with its chunk size from the CUDA device's free memory (``GPU_MEMORY_SHARE`` of it),
    rounded down to a power of two so a resumed run on a slightly fuller device chunks the same;
    unchanged on the CPU or where the caller fixed a chunk size. Call it only where the caller
    left the memory budget to the device (``encode`` without ``memory_budget_mb``, the CLI
    without ``--memory-mb``): a fixed 1 GB starves a large GPU and overflows a small one."""
    dev = torch.device(device)
    if dev.type != "cuda" or cfg.chunk_size is not None:
        return cfg
    free, _ = torch.cuda.mem_get_info(dev)
    budget = dataclasses.replace(cfg, memory_budget_mb=max(1.0, GPU_MEMORY_SHARE * free / 2**20))
    chunk = chunk_size_for(arch, pixels, budget)
    return dataclasses.replace(budget, chunk_size=1 << (chunk.bit_length() - 1))


def encode(images: torch.Tensor, arch: str | Arch = "3x15", steps: int | None = None, lr: float | None = None,
           device=None, labels=None, class_names=None, progress: bool = True, compression=None,
           init=None, **options) -> INRSet:
    """Fit one SIREN per image of ``images`` (uint8 N×C×H×W, C = 1 or 3) → INRSet on ``device``.

    ``options`` are further :class:`FitConfig` fields (target_psnr, seed, chunk_size, ...).
    ``compression``: a :class:`~rapidinr.encoding.compress.CompressConfig` (pruning rounds, quantization).
    ``init``: ``"random"`` (default), ``"learned"`` (the shipped init for this arch and size), a
    learned-init file's path, or a :class:`~rapidinr.encoding.learned_init.LearnedInit` (see ``meta.py``).
    ``steps`` / ``lr``: default 2000 and 1e-3, or a learned init's recommended values.
    """
    check_images(images)
    _, c, h, w = images.shape
    if isinstance(arch, str):
        arch = Arch.parse(arch, channels=c, w0=options.pop("w0", Arch.w0))
    elif arch.channels != c:
        arch = dataclasses.replace(arch, channels=c)
    cfg = FitConfig(**fit_settings(None, steps, lr), **options)  # bad options fail before any work
    check_run(images, arch, cfg, labels, class_names)
    dev = resolve_device(device)
    learned, init_meta = _learned_init(init, arch, h, w, cfg)  # -- learned init (meta.py) --
    cfg = dataclasses.replace(cfg, **fit_settings(learned, steps, lr))
    if "memory_budget_mb" not in options:  # on CUDA: chunks sized from the free device memory
        cfg = device_chunking(cfg, arch, h * w, dev)
    start = time.perf_counter()
    with encoder_threads() as threads:  # no more CPU threads than the cores other processes leave free
        result = fit(images, arch, cfg, device=dev, progress=progress, on_check=_refresh(threads),
                     init=learned.params if learned is not None else None)
        seconds = time.perf_counter() - start
        meta = {"fit": _fit_meta(cfg), "refits": result.refits, "image_steps": result.image_steps,
                "encode_seconds": round(seconds, 3), "device": str(dev), "init": init_meta}
        return _finish(images, result.params, arch, cfg, compression, dev, meta, labels, class_names, progress,
                       learned.params if learned is not None else None)


def _refresh(threads):
    """fit's ``on_check`` hook: the thread policy looks at the load again (at most every few s)."""
    return lambda step, rows, psnr: threads.refresh()


def check_images(images) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        raise UserError("encode: images must be a uint8 tensor N×C×H×W")
    if images.shape[1] not in (1, 3) or images.shape[2] < 1 or images.shape[3] < 1:
        raise UserError(f"encode: images must be N×C×H×W with C = 1 or 3 and H, W >= 1, got {tuple(images.shape)}")


MAX_SEED = 2**32 - 1  # image i is seeded with seed + i; torch takes seeds below 2^64


def check_run(images, arch: Arch, cfg: FitConfig, labels, class_names, memory: bool = False) -> None:
    """What would make the encode fail or its file unloadable, refused before any fitting:
    labels and class names, the seed, the architecture's size, the memory budget (a finite
    number; with ``memory``, also large enough for one image: :func:`check_memory`)."""
    try:
        check_labels(labels, class_names, images.shape[0])
    except UserError as err:
        raise UserError(f"encode: {err}") from None
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or not 0 <= cfg.seed <= MAX_SEED - images.shape[0]:
        raise UserError(f"--seed: expected an integer 0..{MAX_SEED - images.shape[0]}, got {cfg.seed!r}")
    budget = cfg.memory_budget_mb
    if isinstance(budget, bool) or not (isinstance(budget, (int, float)) and math.isfinite(budget) and budget > 0):
        raise UserError(f"--memory-mb: expected a finite number of MiB above 0, got {budget!r}")
    if memory:
        check_memory(arch, images.shape[2], images.shape[3], cfg)
    check_arch_size(arch)


def check_memory(arch: Arch, height: int, width: int, cfg: FitConfig) -> None:
    """One image must fit ``--memory-mb`` (unless --batch-size sets the chunk by hand): past it the
    fit would ignore the budget, so refuse it with what to do."""
    budget = cfg.memory_budget_mb
    if cfg.chunk_size is not None:
        return
    # chunk_size_for never answers below one image; asked for SCALE times the budget, it answers
    # SCALE times the images that fit (rounded down), so one image fits iff it answers >= SCALE.
    scale = 1 << 20
    answer = chunk_size_for(arch, height * width, dataclasses.replace(cfg, memory_budget_mb=budget * scale))
    if answer < scale:
        need = budget * scale / max(answer, 1)
        raise UserError(f"--memory-mb {budget:g}: one {height}x{width} image needs about {need:.0f} MiB to fit "
                        f"with arch {arch.name}; pass --size to shrink the images or a larger --memory-mb")


def _finish(images, params, arch: Arch, cfg: FitConfig, compression, dev, meta: dict, labels, class_names,
            progress: bool, base: torch.Tensor | None = None) -> INRSet:
    """Round 1's weights (N, P) → the final INRSet on ``dev``: compressed (rounds 2-3 and
    quantization, compress.py) when ``compression`` asks for it, else dense; PSNR measured."""
    if compression is not None and compression.active:
        return compress(images, arch, cfg, compression, dev, init=params, progress=progress,
                        meta=meta, labels=labels, class_names=class_names, base=base)
    inrs = INRSet(params, arch, images.shape[2], images.shape[3], labels, class_names, None, meta).to(dev)
    inrs.psnr = measure_set(inrs, images)
    return inrs


def _learned_init(spec, arch: Arch, height: int, width: int, cfg: FitConfig):
    """The learned init ``spec`` asks for (or None) and what the file header records about it.

    A .rinr stores every image's full weights, so decoding never needs the init; the header
    names it (kind, sha256 of its weights, arch, size, training data, file name) for provenance.
    """
    learned = resolve_init(spec, arch, height, width)
    if learned is None:
        return None, {"kind": "random", "seed": cfg.seed}
    return learned, learned.identity(learned.info.get("file"))


def _fit_meta(cfg: FitConfig) -> dict:
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("memory_budget_mb",)}


class Checkpoint:
    """Finished chunks of an interrupted encode, kept in ``OUT.rinr.partial/``.

    Each chunk file is written atomically, so a killed run loses at most the chunk in flight:
    ``chunk-I.rinrchunk`` holds chunk I's round-1 weights, ``packed-I.rinrchunk`` the same chunk
    after the compression rounds and quantization (its store's tensors and every round's per-image
    statistics), so a kill during compression loses only the chunk being compressed.
    ``manifest.json`` pins what the run was (source, sizes, architecture, fitting settings) so
    ``--resume`` never mixes chunks of two different runs, and each chunk file carries the
    fingerprint of the images it was fitted to (:func:`chunk_fingerprint`), so a chunk whose
    images changed since is refitted; a packed chunk also carries its compression settings.
    Chunks are read back one at a time, as the encode reaches them (never the whole set at once).
    """

    def __init__(self, out: Path, manifest: dict):
        self.dir = out.with_name(out.name + ".partial")
        self.manifest = json.loads(json.dumps(manifest))  # as it reads back (tuples become lists)

    def exists(self) -> bool:
        return self.dir.exists()

    def start(self, resume: bool) -> None:
        """Open the folder (emptied unless ``resume``); refuse a folder of another run's chunks."""
        if not resume:
            shutil.rmtree(self.dir, ignore_errors=True)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"{self.dir}: cannot create checkpoint folder ({err.strerror or err})") from None
        manifest_path = self.dir / "manifest.json"
        if manifest_path.exists():
            try:
                old = json.loads(manifest_path.read_text())
            except (OSError, json.JSONDecodeError):
                old = None
            if old != self.manifest:
                raise UserError(f"{self.dir}: the interrupted run used other settings or images; "
                                "rerun with the same options, or use --overwrite to start over")
        else:
            write_atomic(manifest_path, json.dumps(self.manifest, sort_keys=True).encode())

    def _read(self, name: str, fingerprint: str):
        """(header, tensors) of a chunk file made from the same images, else None; a damaged file
        (or one of other images) is removed: its chunk is done again, never trusted."""
        path = self.dir / name
        if not path.exists():
            return None
        try:
            header, tensors, _ = fileformat.read(path)
            if str(header["fingerprint"]) == fingerprint:
                return header, tensors
        except (UserError, KeyError, ValueError, TypeError):
            pass
        path.unlink(missing_ok=True)
        return None

    def fitted(self, index: int, fingerprint: str, rows: int, n_params: int):
        """Chunk ``index``'s round-1 (params (rows, P), train PSNR (rows,), refits), or None."""
        found = self._read(f"chunk-{index:06d}.rinrchunk", fingerprint)
        if found is None:
            return None
        header, tensors = found
        params, psnr = tensors.get("params"), tensors.get("psnr")
        if (params is None or psnr is None or tuple(params.shape) != (rows, n_params) or params.dtype != torch.float32
                or tuple(psnr.shape) != (rows,) or int(header.get("chunk", -1)) != index):
            return None
        return params, psnr, int(header.get("refits", 0))

    def save(self, index: int, params: torch.Tensor, psnr: torch.Tensor, refits: int, fingerprint: str) -> None:
        fileformat.write(self.dir / f"chunk-{index:06d}.rinrchunk",
                         {"chunk": index, "refits": refits, "fingerprint": fingerprint},
                         {"params": params, "psnr": psnr})

    def packed(self, index: int, fingerprint: str, rows: int, settings: dict, like: PackedStore):
        """Chunk ``index`` compressed with ``settings`` (CompressConfig.to_json()) → (CompressedChunk,
        refits), or None. ``like``: a store of the run's layout, whose shapes the chunk must match."""
        found = self._read(f"packed-{index:06d}.rinrchunk", fingerprint)
        if found is None:
            return None
        header, tensors = found
        try:
            if header["compression"] != settings or int(header["chunk"]) != index:
                return None
            parts = {k: tensors[k] for k in like.parts()}
            for name, t in parts.items():
                model = like.parts()[name]
                if t.dtype != model.dtype or tuple(t.shape) != (rows, *model.shape[1:]):
                    return None
            rounds = []
            for j, entry in enumerate(header["rounds"]):
                entry = {**entry, "_psnr": tensors[f"psnr.{j}"], "_sparsity": tensors[f"sparsity.{j}"]}
                if f"ratio.{j}" in tensors:
                    entry["_ratio"] = tensors[f"ratio.{j}"]
                rounds.append(entry)
            return CompressedChunk(like.like(parts), rounds), int(header["refits"])
        except (KeyError, TypeError, ValueError):
            return None

    def save_packed(self, index: int, part: CompressedChunk, refits: int, fingerprint: str, settings: dict) -> None:
        tensors = dict(part.store.parts())
        for j, entry in enumerate(part.rounds):
            tensors[f"psnr.{j}"], tensors[f"sparsity.{j}"] = entry["_psnr"], entry["_sparsity"]
            if "_ratio" in entry:
                tensors[f"ratio.{j}"] = entry["_ratio"]
        rounds = [{k: v for k, v in entry.items() if not k.startswith("_")} for entry in part.rounds]
        fileformat.write(self.dir / f"packed-{index:06d}.rinrchunk",
                         {"chunk": index, "refits": refits, "fingerprint": fingerprint, "compression": settings,
                          "rounds": rounds}, tensors)

    def chunk_stores(self, stamps: list[str], n: int, chunk: int, settings: dict | None, like):
        """The finished chunks' stores in order, read one at a time (the file is written from them):
        compressed chunks where ``settings`` (the compression's) is given, else round 1's dense weights."""
        for index, stamp in enumerate(stamps):
            rows = min(chunk, n - index * chunk)
            if settings is not None:
                found = self.packed(index, stamp, rows, settings, like)
                store = found[0].store if found is not None else None
            else:
                found = self.fitted(index, stamp, rows, like.params.shape[1])
                store = DenseStore(found[0]) if found is not None else None
            if store is None:
                raise UserError(f"{self.dir}: chunk {index} went missing or changed while the file was written; "
                                "run the encode again with --resume")
            yield store

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def chunk_fingerprint(images: torch.Tensor, names: list[str] | None) -> str:
    """SHA-256 over a chunk's image names and every pixel, in order (uint8 (n, C, H, W))."""
    digest = hashlib.sha256(json.dumps([list(images.shape), list(names or [])]).encode())
    digest.update(images.contiguous().numpy().tobytes())
    return digest.hexdigest()


def encode_to_file(data: ImageSet, out: Path, arch: Arch, cfg: FitConfig, device, **options) -> INRSet:
    """:func:`encode_file`, then the set as the file holds it, read back onto ``device``."""
    encode_file(data, out, arch, cfg, device, **options)
    return load(out, device)


def encode_file(data: ImageSet, out: Path, arch: Arch, cfg: FitConfig, device, *, resume: bool = False,
                overwrite: bool = False, progress: bool = True, compression=None, init=None,
                steps: int | None = None, lr: float | None = None) -> dict:
    """Encode the images of ``data`` into ``out`` chunk by chunk, checkpointing each chunk; resumable.
    Returns the file's summary (:func:`~rapidinr.codec.inrset.file_summary`).

    ``data`` carries the images (uint8 N×C×H×W) with what travels beside them: labels, class
    names, one name per image (file names: part of each chunk's fingerprint for ``resume``) and
    the source's description, written into the header.

    ``compression`` (a :class:`~rapidinr.encoding.compress.CompressConfig`) runs on each chunk as soon
    as round 1 has fitted it (``compress_chunk``), and the compressed chunk is checkpointed too, so
    a killed run redoes at most the chunk in flight. The file is then written from the
    checkpointed chunks, one chunk in memory at a time (``FileForm``): the set's weights are never
    whole in memory, only its per-image PSNR (the file stores it). The compact store allocates its
    bits over the whole set, so it still runs on the whole set after round 1.
    ``init``: as for :func:`encode` (random, learned, a learned-init path or a LearnedInit).
    ``steps`` / ``lr``: as for :func:`encode`: where None, a learned init's recommended fit
    (chosen on held-out images, init_tuning.py) replaces ``cfg``'s value; with a random init, or
    an init that recommends nothing, ``cfg``'s values stand. Pass them to pin ``cfg``'s values.

    The final file appears atomically at the end; the checkpoint folder is then removed.
    """
    out = Path(out)
    images, labels, source = data.images, data.labels, data.source
    class_names, names = data.class_names or None, data.names or None
    check_images(images)
    check_run(images, arch, cfg, labels, class_names, memory=True)
    if out.exists() and not (overwrite or resume):
        raise UserError(f"{out}: already exists (pass --overwrite to replace it)")
    if out.exists() and out.is_dir():
        raise UserError(f"{out}: is a folder")
    if not out.parent.is_dir():
        raise UserError(f"{out}: folder {out.parent} does not exist")
    n, c, h, w = images.shape
    chunk = chunk_size_for(arch, h * w, cfg)
    learned, init_meta = _learned_init(init, arch, h, w, cfg)  # -- learned init (meta.py) --
    recommended = (learned.recommended_fit if learned is not None else None) or {}
    cfg = dataclasses.replace(cfg, steps=steps if steps is not None else recommended.get("steps", cfg.steps),
                              lr=lr if lr is not None else recommended.get("lr", cfg.lr))
    manifest = {"images": n, "shape": [c, h, w], "arch": arch.to_json(), "fit": _fit_meta(cfg),
                "chunk": chunk, "source": source, "init": init_meta}
    checkpoint = Checkpoint(out, manifest)
    if checkpoint.exists() and not (resume or overwrite):
        raise UserError(f"{checkpoint.dir}: an interrupted encode left its chunks here; "
                        "pass --resume to continue it or --overwrite to start over")
    if resume and not overwrite and out.exists() and not checkpoint.exists():  # never replace it unasked
        raise UserError(f"{out}: already exists and there is no interrupted run to resume "
                        "(pass --overwrite to encode it again)")
    checkpoint.start(resume)
    dev = resolve_device(str(device))
    cfg = dataclasses.replace(cfg, chunk_size=chunk)
    compact = compression is not None and compression.compact is not None
    compressing = compression is not None and compression.active and not compact
    settings = json.loads(json.dumps(compression.to_json())) if compressing else None
    like = empty_store(compression, arch) if compressing else DenseStore(torch.zeros(0, arch.n_params))  # (0, P)
    base = learned.params if learned is not None else None
    began, fit_seconds = time.time(), 0.0
    whole, totals, psnr, stamps = None, RoundTotals(), [], []
    refits, resumed, resumed_packed = 0, 0, 0
    bar = image_bar(float(n * (passes(compression, h, w) if compressing else 1)), "encode", progress)
    with encoder_threads() as threads:  # no more CPU threads than the cores other processes leave free
        for index, first in enumerate(range(0, n, chunk)):
            rows = slice(first, min(first + chunk, n))
            count, mark = rows.stop - rows.start, bar.n
            stamps.append(chunk_fingerprint(images[rows], names[rows] if names else None))
            found = checkpoint.packed(index, stamps[-1], count, settings, like) if compressing else None
            if found is not None:  # compressed before the kill: nothing of this chunk is redone
                part, chunk_refits = found
                resumed_packed += 1
            else:
                fitted = checkpoint.fitted(index, stamps[-1], count, arch.n_params)
                if fitted is not None:
                    params, chunk_refits = fitted[0], fitted[2]
                    resumed += 1
                    bar.update(count)
                else:
                    began_fit = time.perf_counter()
                    result = fit(images[rows], arch, cfg, device=dev, progress=bar, seed_offset=first,
                                 on_check=_refresh(threads), init=base)
                    fit_seconds += time.perf_counter() - began_fit
                    params, chunk_refits = result.params, result.refits
                    checkpoint.save(index, params, result.train_psnr, chunk_refits, stamps[-1])
                if compressing:
                    part = compress_chunk(images[rows], params, arch, cfg, compression, dev, bar)
                    checkpoint.save_packed(index, part, chunk_refits, stamps[-1], settings)
                elif compact:  # compress() measures round 1 itself, over the whole set
                    part = CompressedChunk(DenseStore(params), [])
                else:  # the file's PSNR: measured chunk by chunk
                    part = CompressedChunk(DenseStore(params), [round_stats("fit", params, arch, images[rows], dev, 0.0)])
            bar.update(max(0.0, mark + count * (bar.total / max(n, 1)) - bar.n))
            refits += chunk_refits
            check_finite(out, part.store)
            if compact:  # the compact store's bit allocation needs the whole set
                whole = part.store.with_rows(n) if whole is None else whole
                whole.put_rows(first, part.store)
            else:  # on disk in the checkpoint: only its PSNR and its rounds' sums stay here
                psnr.append(totals.add(part.rounds))
            del part
        bar.close()
        meta = {"fit": _fit_meta(cfg), "source": source, "refits": refits, "encode_seconds": round(fit_seconds, 3),
                "device": str(dev), "resumed_chunks": resumed + resumed_packed, "init": init_meta}
        if compact:
            whole = whole if whole is not None else like
            inrs = _finish(images, whole.params, arch, cfg, compression, dev, meta, labels, class_names, progress, base)
            file_bytes, psnr = inrs.save(out), inrs.psnr
        else:
            if compressing:
                merged = totals.merged()
                meta["resumed_compressed_chunks"] = resumed_packed
                merged[0]["seconds"] = round(fit_seconds, 3)
                meta["compression"] = {**compression.to_json(), "rounds": merged}
            psnr = torch.cat(psnr) if psnr else torch.zeros(0)  # (N,)
            chunks = functools.partial(checkpoint.chunk_stores, stamps, n, chunk, settings, like)  # read per pass
            file_bytes = write_set(out, like.file_form(chunks), arch, h, w, labels, class_names, psnr, meta)
    checkpoint.remove()
    remove_stale_temporaries(out, older_than=began)  # left by a run killed mid-write
    return file_summary(n, h, w, file_bytes, psnr)
