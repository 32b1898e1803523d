"""From images to an INRSet: the public ``encode`` and the resumable, checkpointed file encoder."""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import torch

from rapidinr.codec import fileformat
from rapidinr.codec.inrset import INRSet
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.errors import UserError
from rapidinr.core.files import remove_stale_temporaries, write_atomic
from rapidinr.core.metrics import psnr as psnr_of
from rapidinr.encoding.compress import compress
from rapidinr.encoding.fit import chunk_size_for, fit
from rapidinr.encoding.learned_init import fit_settings, resolve_init


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(device: str | None) -> torch.device:
    """``None``/``auto`` → cuda when available, else cpu; an unusable device is a clear error."""
    if device in (None, "auto"):
        return torch.device(default_device())
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserError(f"--device: unknown device {device!r} (use cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
    return dev


def measure_psnr(inrs: INRSet, images: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    """The one PSNR of every image's decode against the original (8-bit rounded). (N,)"""
    out = []
    for start in range(0, len(inrs), batch):
        rows = torch.arange(start, min(start + batch, len(inrs)))
        out.append(psnr_of(images[start : start + batch], inrs.decode(rows).cpu()))
    return torch.cat(out) if out else torch.empty(0)


def decoded_psnr(images: torch.Tensor, params: torch.Tensor, arch: Arch) -> torch.Tensor:
    """(N,) PSNR of raw SIREN weights (N, P), decoded on their device at the images' size
    (uint8 N×C×H×W): :func:`measure_psnr` for weights not yet wrapped in an INRSet."""
    return measure_psnr(INRSet(params, arch, images.shape[2], images.shape[3]), images)


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
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        raise UserError("encode: images must be a uint8 tensor N×C×H×W")
    n, c, h, w = images.shape
    if isinstance(arch, str):
        arch = Arch.parse(arch, channels=c, w0=options.pop("w0", Arch.w0))
    elif arch.channels != c:
        arch = dataclasses.replace(arch, channels=c)
    cfg = FitConfig(**fit_settings(None, steps, lr), **options)  # bad options fail before any work
    dev = resolve_device(device)
    learned, init_meta = _learned_init(init, arch, h, w, cfg)  # -- learned init (meta.py) --
    cfg = dataclasses.replace(cfg, **fit_settings(learned, steps, lr))
    start = time.perf_counter()
    result = fit(images, arch, cfg, device=dev, progress=progress,
                 init=learned.params if learned is not None else None)
    seconds = time.perf_counter() - start
    meta = {"fit": _fit_meta(cfg), "refits": result.refits, "image_steps": result.image_steps,
            "encode_seconds": round(seconds, 3), "device": str(dev), "init": init_meta}
    return _finish(images, result.params, arch, cfg, compression, dev, meta, labels, class_names, progress,
                   learned.params if learned is not None else None)


def _finish(images, params, arch: Arch, cfg: FitConfig, compression, dev, meta: dict, labels, class_names,
            progress: bool, base: torch.Tensor | None = None) -> INRSet:
    """Round 1's weights (N, P) → the final INRSet on ``dev``: compressed (rounds 2-3 and
    quantization, compress.py) when ``compression`` asks for it, else dense; PSNR measured."""
    if compression is not None and compression.active:
        return compress(images, arch, cfg, compression, dev, init=params, progress=progress,
                        meta=meta, labels=labels, class_names=class_names, base=base)
    inrs = INRSet(params, arch, images.shape[2], images.shape[3], labels, class_names, None, meta).to(dev)
    inrs.psnr = measure_psnr(inrs, images)
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

    Each chunk file is written atomically, so a killed run loses at most the chunk in flight.
    ``manifest.json`` pins what the run was (source, sizes, architecture, fitting settings) so
    ``--resume`` never mixes chunks of two different runs.
    """

    def __init__(self, out: Path, manifest: dict):
        self.dir = out.with_name(out.name + ".partial")
        self.manifest = json.loads(json.dumps(manifest))  # as it reads back (tuples become lists)

    def exists(self) -> bool:
        return self.dir.exists()

    def start(self, resume: bool) -> dict[int, tuple[torch.Tensor, torch.Tensor, int]]:
        """Open the folder; with ``resume``, return the finished chunks {index: (params, psnr, refits)}."""
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
        done = {}
        for path in sorted(self.dir.glob("chunk-*.rinrchunk")):
            try:
                header, tensors, _ = fileformat.read(path)
                index = int(header["chunk"])
                done[index] = (tensors["params"], tensors["psnr"], int(header.get("refits", 0)))
            except (UserError, KeyError, ValueError, TypeError):
                path.unlink(missing_ok=True)  # a damaged checkpoint is refitted, not trusted
        return done

    def save(self, index: int, params: torch.Tensor, psnr: torch.Tensor, refits: int) -> None:
        fileformat.write(self.dir / f"chunk-{index:06d}.rinrchunk",
                         {"chunk": index, "refits": refits}, {"params": params, "psnr": psnr})

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def encode_to_file(images, out: Path, arch: Arch, cfg: FitConfig, device, labels=None, class_names=None,
                   source: str = "", resume: bool = False, overwrite: bool = False,
                   progress: bool = True, compression=None, init=None) -> INRSet:
    """Encode ``images`` into ``out`` chunk by chunk, checkpointing each chunk; resumable.

    ``compression`` (a :class:`~rapidinr.encoding.compress.CompressConfig`) runs after round 1's chunks.
    ``init``: as for :func:`encode` (random, learned, a learned-init path or a LearnedInit).

    The final file appears atomically at the end; the checkpoint folder is then removed.
    """
    out = Path(out)
    if out.exists() and not (overwrite or resume):
        raise UserError(f"{out}: already exists (pass --overwrite to replace it)")
    if out.exists() and out.is_dir():
        raise UserError(f"{out}: is a folder")
    if not out.parent.is_dir():
        raise UserError(f"{out}: folder {out.parent} does not exist")
    n, c, h, w = images.shape
    chunk = chunk_size_for(arch, h * w, cfg)
    learned, init_meta = _learned_init(init, arch, h, w, cfg)  # -- learned init (meta.py) --
    manifest = {"images": n, "shape": [c, h, w], "arch": arch.to_json(), "fit": _fit_meta(cfg),
                "chunk": chunk, "source": source, "init": init_meta,
                "sample_sum": int(images[:: max(1, n // 64)].long().sum())}
    checkpoint = Checkpoint(out, manifest)
    if checkpoint.exists() and not (resume or overwrite):
        raise UserError(f"{checkpoint.dir}: an interrupted encode left its chunks here; "
                        "pass --resume to continue it or --overwrite to start over")
    if resume and not overwrite and out.exists() and not checkpoint.exists():  # never replace it unasked
        raise UserError(f"{out}: already exists and there is no interrupted run to resume "
                        "(pass --overwrite to encode it again)")
    done = checkpoint.start(resume)
    done = {i: d for i, d in done.items()  # a chunk of the wrong shape is refitted, not trusted
            if tuple(d[0].shape) == (min(chunk, n - i * chunk), arch.n_params)}
    first_missing = next(i for i in range(len(done) + 1) if i not in done)
    dev = resolve_device(str(device))
    cfg = dataclasses.replace(cfg, chunk_size=chunk)
    began, start = time.time(), time.perf_counter()
    counted = [0]  # fit reports refits summed over the run; a chunk file keeps only its own

    def save_chunk(index, first_row, part):
        checkpoint.save(index, part.params, part.train_psnr, part.refits - counted[0])
        counted[0] = part.refits

    result = fit(images, arch, cfg, device=dev, progress=progress, start_chunk=first_missing,
                 on_chunk=save_chunk, init=learned.params if learned is not None else None)
    params = result.params
    refits = result.refits
    for index in range(first_missing):
        rows = slice(index * chunk, min((index + 1) * chunk, n))
        params[rows] = done[index][0]
        refits += done[index][2]
    meta = {"fit": _fit_meta(cfg), "source": source, "refits": refits,
            "encode_seconds": round(time.perf_counter() - start, 3), "device": str(dev),
            "resumed_chunks": first_missing, "init": init_meta}
    inrs = _finish(images, params, arch, cfg, compression, dev, meta, labels, class_names, progress,
                   learned.params if learned is not None else None)
    inrs.save(out)
    checkpoint.remove()
    remove_stale_temporaries(out, older_than=began)  # left by a run killed mid-write
    return inrs
