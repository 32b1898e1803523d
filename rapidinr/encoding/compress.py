"""The paper's three rounds (Sec. IV, VI-A) as one pipeline, then layer-wise quantization.

round 1  fit at full precision (paper: 5000 steps at 5e-4)                 -> fit.fit
round 2  L1-unstructured pruning of a fixed share, retrain with the mask    -> optional
round 3  dynamic pruning: ratio from each image's PSNR by a schedule, retrain -> optional
quantize hidden (or all) layers to 8/16 bits, optional quantization-aware fine-tuning

Every step works image by image, so rounds 2-3 and quantization run a chunk at a time
(:func:`compress_chunk`; the file encoder checkpoints each compressed chunk) and equal a pass over
the whole set; only the compact store's bit allocation needs the whole set at once.
Every retraining goes through ``fit.fit`` with the mask, which keeps pruned weights exactly zero.
The PSNR that drives round 3 is the one PSNR (8-bit rounded decode) after the round before.
The result is an INRSet whose store is a :class:`~rapidinr.codec.store.PackedStore` (or the plain
:class:`~rapidinr.codec.store.DenseStore` when nothing was asked for).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from rapidinr.codec.compact import CompactStore, check_bits, default_steps, group_index, image_multipliers
from rapidinr.codec.compact import fake_quantize as compact_fake_quantize
from rapidinr.codec.inrset import INRSet
from rapidinr.codec.measure import measure_weights
from rapidinr.codec.prune import PruneConfig, l1_mask, weight_sparsity
from rapidinr.codec.quantize import QuantConfig, fake_quantize
from rapidinr.codec.store import DenseStore, PackedStore
from rapidinr.core import siren
from rapidinr.core.adam import BatchedAdam
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.errors import UserError
from rapidinr.encoding.allocation import allocate_bits, image_step_exponents
from rapidinr.encoding.fit import chunk_size_for, cosine_lr, fit, images_to_targets, psnr_from_mse

LOSSLESS = (None, "zstd")


@dataclass(frozen=True)
class CompactConfig:
    """The compact store (``rapidinr.codec.compact``): every layer on its own set-wide grid, codes
    entropy-coded, relative to the learned init where the fit started from one."""

    bits: int | None = None  # one width for every group (2..16); None: chosen per group by rate-distortion
    rd_lambda: float = 0.56  # the allocation's trade: bits per weight one dB of PSNR is worth
    finetune_steps: int = 0  # quantization-aware fine-tuning (straight-through) after the allocation
    finetune_lr: float = 1e-4
    rate_weight: float = 0.0  # a rate term in the fine-tuning loss: this times mean |code| (0: none)
    image_steps: bool = False  # each image's own step, from its largest weight in the int8 layers (1 byte/image)
    relative: bool = True  # code w - init when the fit started from a learned init
    store_init: bool = False  # carry the init in the file (else: pinned by its sha256 to a shipped init)
    preset: str | None = None  # the --preset this configuration came from (file header key ``preset``)

    def __post_init__(self) -> None:
        if self.bits is not None:
            check_bits([self.bits], "--compact-bits")
        if not (0 < self.rd_lambda < 1e6):
            raise UserError(f"--rd-lambda must be a positive number of bits per weight per dB, got {self.rd_lambda}")
        if self.finetune_steps < 0:
            raise UserError(f"--quant-finetune-steps must be >= 0, got {self.finetune_steps}")
        if not (0 <= self.rate_weight < 1e6) or (self.rate_weight and not self.finetune_steps):
            raise UserError(f"rate_weight must be >= 0 and needs fine-tuning steps, got {self.rate_weight}")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


# Named configurations ``encode --preset`` picks (benchmarks/compact_store.py measured them).
PRESETS = {"compact": CompactConfig(rd_lambda=0.56, finetune_steps=200, image_steps=True, preset="compact")}


def preset(name: str) -> CompactConfig:
    if name not in PRESETS:
        raise UserError(f"--preset: expected one of {', '.join(sorted(PRESETS))}, got {name!r}")
    return PRESETS[name]


@dataclass(frozen=True)
class CompressConfig:
    """Rounds 2-3 (``prune``), quantization (``quant``) and the lossless stage; None skips each.
    ``compact``: the compact store instead of quantization and the lossless stage."""

    prune: PruneConfig | None = None
    quant: QuantConfig | None = None
    lossless: str | None = None  # None or "zstd": a lossless stage over the packed file payload
    compact: CompactConfig | None = None

    def __post_init__(self) -> None:
        if self.lossless not in LOSSLESS:
            raise UserError(f"--lossless: expected zstd or none, got {self.lossless!r}")
        if self.compact is not None and (self.quant is not None or self.lossless is not None or self.prune is not None):
            raise UserError("the compact store quantizes and entropy-codes on its own: drop --quant-bits, "
                            "--lossless and the pruning options")

    @property
    def active(self) -> bool:
        return ((self.prune is not None and self.prune.active) or self.quant is not None or self.lossless is not None
                or self.compact is not None)

    def to_json(self) -> dict:
        return {"prune": self.prune.to_json() if self.prune else None,
                "quant": self.quant.to_json() if self.quant else None, "lossless": self.lossless,
                "compact": self.compact.to_json() if self.compact else None}


def round_stats(name: str, params, arch, images, device, seconds: float, **extra) -> dict:
    """One round's statistics for a chunk: per-image PSNR and weight sparsity (``_psnr``,
    ``_sparsity``, (n,)), merged over the set's chunks by :func:`merge_rounds`."""
    psnr = measure_weights(params, arch, images, device)
    sparsity = weight_sparsity(params, arch) if len(params) else torch.zeros(0)
    return {"round": name, "seconds": seconds, **extra, "_psnr": psnr, "_sparsity": sparsity}


class RoundTotals:
    """Every chunk's rounds (:func:`round_stats`, the same rounds in the same order in each) summed
    as the chunks come: the set's rounds as ``meta["compression"]["rounds"]`` records them (means
    over all images, seconds summed), with no per-image tensor of the set kept but the last
    round's PSNR, which the caller keeps (the file stores it)."""

    def __init__(self):
        self.totals: list[dict] | None = None

    def _begin(self, rounds: list[dict], has_ratio, means: tuple[str, ...] = ()) -> None:
        if self.totals is None:  # the first chunk's rounds name them; their other keys travel as they are
            skip = ("round", "seconds", *means)
            self.totals = [{"round": r["round"], "seconds": 0.0, "n": 0, "psnr": 0.0, "sparsity": 0.0, "ratio": 0.0,
                            "has_ratio": has_ratio(r),
                            "extra": {k: v for k, v in r.items() if k not in skip and not k.startswith("_")}}
                           for r in rounds]

    def add(self, rounds: list[dict]) -> torch.Tensor:
        """Add one chunk's rounds; returns its last round's per-image PSNR (n,)."""
        self._begin(rounds, lambda r: "_ratio" in r)
        for total, r in zip(self.totals, rounds):
            total["seconds"] += float(r["seconds"])
            total["n"] += len(r["_psnr"])
            total["psnr"] += float(r["_psnr"].double().sum())
            total["sparsity"] += float(r["_sparsity"].double().sum())
            if total["has_ratio"]:
                total["ratio"] += float(r["_ratio"].double().sum())
        return rounds[-1]["_psnr"] if rounds else torch.zeros(0)

    def add_merged(self, rounds: list[dict], n: int) -> None:
        """Add the rounds of ``n`` images already merged (:meth:`merged`'s form: a shard's header meta)."""
        self._begin(rounds, lambda r: "ratio_mean" in r, ("psnr_mean", "weight_sparsity", "ratio_mean"))
        for total, r in zip(self.totals, rounds):
            total["seconds"] += float(r["seconds"])
            total["n"] += n
            total["psnr"] += (r["psnr_mean"] or 0.0) * n  # None: no image had a finite PSNR to average
            total["sparsity"] += r["weight_sparsity"] * n
            if total["has_ratio"]:
                total["ratio"] += r["ratio_mean"] * n

    def merged(self) -> list[dict]:
        out = []
        for t in self.totals or []:
            extra = dict(t["extra"])
            if t["has_ratio"]:
                extra["ratio_mean"] = t["ratio"] / t["n"] if t["n"] else 0.0
            out.append({"round": t["round"], "psnr_mean": t["psnr"] / t["n"] if t["n"] else None,
                        "weight_sparsity": t["sparsity"] / t["n"] if t["n"] else 0.0,
                        "seconds": round(t["seconds"], 3), **extra})
        return out


def merge_rounds(chunks: list[list[dict]]) -> tuple[list[dict], torch.Tensor]:
    """Every chunk's rounds (:func:`round_stats`) → the set's rounds (:class:`RoundTotals`) and the
    last round's PSNR (N,)."""
    totals = RoundTotals()
    last = [totals.add(parts) for parts in chunks]
    return totals.merged(), torch.cat(last) if last else torch.zeros(0)


def retrain(images, params, mask, arch: Arch, fit_cfg: FitConfig, prune: PruneConfig, device,
            progress: bool = True) -> torch.Tensor:
    """Retrain masked weights at the pruning rounds' rate (no target-PSNR early stop)."""
    cfg = dataclasses.replace(fit_cfg, steps=prune.retrain_steps, lr=prune.retrain_lr, target_psnr=None)
    return fit(images, arch, cfg, device=device, init=params * mask, mask=mask, progress=progress).params


def finetune_quantized(images, params, arch: Arch, quant: QuantConfig, fit_cfg: FitConfig, device,
                       progress: bool = True) -> torch.Tensor:
    """Quantization-aware fine-tuning of a layer-wise quantized store (:func:`finetune_straight_through`
    at ``fake_quantize(·, layout)``); zeros (pruned weights) stay zero."""
    layout = quant.layout(arch)
    return finetune_straight_through(images, params, arch, lambda p, rows: fake_quantize(p, layout),
                                     quant.finetune_steps, quant.finetune_lr, fit_cfg, device, progress,
                                     keep_zeros=True)


def finetune_straight_through(images, params, arch: Arch, quantizer, steps: int, lr: float, fit_cfg: FitConfig,
                              device, progress: bool = True, keep_zeros: bool = False, rate_grad=None) -> torch.Tensor:
    """Quantization-aware fine-tuning with a straight-through estimator.

    The loss is taken at ``quantizer(p, rows)`` (the weights the store will decode to; ``rows`` the
    slice of the set that ``p`` holds), its gradient applied to float shadow weights ``p``; with
    ``keep_zeros`` zeros (pruned weights) stay zero.
    Returns each image's float weights whose *quantized* decode had the best PSNR seen (the
    starting point included), so it never makes an image worse. ``rate_grad(p, rows)`` (b, P): the
    gradient of a rate term added to the loss's (a smaller file for some PSNR); the best weights
    are then the last ones rather than the best-PSNR ones.
    """
    n, _, h, w = images.shape
    device = torch.device(device)
    coords = siren.coordinate_grid(h, w, device=device)  # (HW, 2)
    cfg = dataclasses.replace(fit_cfg, steps=steps, lr=lr)
    size = chunk_size_for(arch, h * w, cfg)
    out = params.clone()
    bar = progress if isinstance(progress, tqdm) else None  # a caller's bar, advanced by images
    for start in (range(0, n, size) if bar is not None else
                  tqdm(range(0, n, size), desc="quant-finetune", disable=not progress)):
        adam = BatchedAdam(params[start : start + size].to(device).clone(), cfg.betas, cfg.eps)  # (b, P)
        p = adam.params
        mask = (p != 0).float() if keep_zeros else None
        targets = images_to_targets(images[start : start + size]).to(device)  # (b, HW, C)
        best, best_psnr = p.clone(), torch.full((p.shape[0],), -math.inf, device=device)
        for step in range(cfg.steps + 1):
            mse, grad = siren.loss_and_grad(quantizer(p, slice(start, start + size)), arch, coords, targets)
            psnr = psnr_from_mse(mse)  # (b,)
            better = psnr > best_psnr if rate_grad is None else torch.ones_like(psnr, dtype=torch.bool)
            # (b,): a row-wise select, never boolean indexing (a host sync a step)
            best = torch.where(better[:, None], p, best)
            best_psnr = torch.where(better, psnr, best_psnr)
            if step == cfg.steps:
                break
            if rate_grad is not None:
                grad.add_(rate_grad(p, slice(start, start + size)))
            adam.step(grad, cosine_lr(cfg, step, cfg.lr), mask)
        out[start : start + size] = best.cpu()
        if bar is not None:
            bar.update(p.shape[0])
    return out


def compact_store(images, params, arch: Arch, cfg: CompactConfig, fit_cfg: FitConfig, device,
                  base: torch.Tensor | None = None, progress: bool = True) -> CompactStore:
    """Float weights (N, P) → a CompactStore: bits per group (fixed or by rate-distortion),
    optional quantization-aware fine-tuning at those bits and steps. ``base`` (P,): the learned
    init the fit started from (coded relative to it when ``cfg.relative``)."""
    init = base.float().cpu() if (base is not None and cfg.relative) else None
    n_groups = 2 * len(arch.layer_shapes())
    exps = image_step_exponents(params, arch, init) if cfg.image_steps else None  # (N,) int8
    bits = ([cfg.bits] * n_groups if cfg.bits is not None
            else allocate_bits(images, params, arch, init, cfg.rd_lambda, image_exps=exps))
    steps = default_steps(params - (init if init is not None else 0), arch, bits, exps)
    if cfg.finetune_steps:
        anchor = (init if init is not None else torch.zeros(arch.n_params)).to(device)  # (P,)
        step = torch.tensor(steps, device=device)[group_index(arch).to(device)]  # (P,)
        image_step = image_multipliers(exps, params.shape[0], device)  # (N, 1)
        # d/dw of rate_weight * mean |(w - anchor) / step|: a Laplace code length's proxy
        rate_grad = (lambda p, rows: torch.sign(p - anchor).div_(step).div_(image_step[rows]).mul_(
            cfg.rate_weight / arch.n_params)) if cfg.rate_weight else None
        params = finetune_straight_through(
            images, params, arch, lambda p, rows: compact_fake_quantize(
                p, arch, bits, steps, init, None if exps is None else exps[rows].to(p.device)),
            cfg.finetune_steps, cfg.finetune_lr, fit_cfg, device, progress, rate_grad=rate_grad)
    return CompactStore.from_params(params, arch, bits, steps, init, cfg.store_init, exps)


def passes(cfg: CompressConfig | None, height: int, width: int) -> int:
    """How many times the pipeline fits every image: round 1, each retraining round, the
    quantization-aware fine-tuning (a progress bar over the whole encode counts images × passes)."""
    if cfg is None or not cfg.active:
        return 1
    prune = cfg.prune
    return (1 + int(prune is not None and prune.runs_l1(height, width))
            + int(prune is not None and prune.schedule is not None)
            + int(cfg.quant is not None and cfg.quant.finetune_steps > 0))


def packed_store(params: torch.Tensor, arch: Arch, cfg: CompressConfig) -> PackedStore:
    """Weights (n, P) packed as ``cfg`` stores them: quantized when it quantizes, else float (pruning only)."""
    if cfg.quant is None:
        return PackedStore.from_params(params, arch, 32, lossless=cfg.lossless)
    return PackedStore.from_params(params, arch, cfg.quant.bits, cfg.quant.layers, cfg.lossless, cfg.quant.bias_bits)


def empty_store(cfg: CompressConfig, arch: Arch) -> PackedStore:
    """A store of no images with the layout :func:`compress_chunk` gives under ``cfg``."""
    return packed_store(torch.zeros(0, arch.n_params), arch, cfg)  # (0, P)


@dataclass
class CompressedChunk:
    """One chunk's compressed weights (a store of its n rows) and its rounds' statistics."""

    store: PackedStore
    rounds: list[dict]  # round_stats dicts: per-image _psnr / _sparsity (and _ratio) tensors (n,)


def compress_chunk(images: torch.Tensor, params: torch.Tensor, arch: Arch, fit_cfg: FitConfig, cfg: CompressConfig,
                   device="cpu", progress=False, reused: bool = True) -> CompressedChunk:
    """Rounds 2-3 and quantization for one chunk: uint8 images (n, C, H, W) and their round-1
    weights (n, P). Every step is per image (L1 ranks each row alone, round 3's ratio comes from
    each image's own PSNR, scales are per image), so a set compressed chunk by chunk (and
    checkpointed between chunks, runner.py) equals the set compressed whole."""
    if cfg.compact is not None:
        raise ValueError("the compact store allocates bits over the whole set: use compress()")
    _, _, h, w = images.shape
    params = params.cpu()
    rounds = [round_stats("fit", params, arch, images, device, 0.0, reused=reused)]
    prune, mask = cfg.prune, None
    if prune is not None and prune.runs_l1(h, w):
        start = time.perf_counter()
        mask = l1_mask(params, arch, prune.l1_ratio, prune.scope)
        params = retrain(images, params, mask, arch, fit_cfg, prune, device, progress)
        rounds.append(round_stats("l1-prune", params, arch, images, device, time.perf_counter() - start,
                             ratio=prune.l1_ratio))
    if prune is not None and prune.schedule is not None:
        start = time.perf_counter()
        ratio = prune.schedule.ratio(rounds[-1]["_psnr"])  # (n,)
        mask = l1_mask(params, arch, ratio, prune.scope, mask)
        params = retrain(images, params, mask, arch, fit_cfg, prune, device, progress)
        rounds.append(round_stats("dynamic-prune", params, arch, images, device, time.perf_counter() - start,
                             schedule=prune.schedule.name, _ratio=ratio))
    quant = cfg.quant
    if quant is not None:
        start = time.perf_counter()
        if quant.finetune_steps:
            params = finetune_quantized(images, params, arch, quant, fit_cfg, device, progress)
    store = packed_store(params, arch, cfg)
    if quant is not None:
        rounds.append(round_stats(f"quantize-{quant.bits}-{quant.layers}", store.dense(), arch, images, device,
                             time.perf_counter() - start))
    return CompressedChunk(store, rounds)


def compress(images: torch.Tensor, arch: Arch, fit_cfg: FitConfig, cfg: CompressConfig, device="cpu",
             init: torch.Tensor | None = None, progress: bool = True, meta: dict | None = None,
             labels: torch.Tensor | None = None, class_names: list[str] | None = None,
             base: torch.Tensor | None = None) -> INRSet:
    """Run the pipeline on uint8 images (N, C, H, W).

    init: round-1 weights (N, P) from an earlier fit (round 1 is then skipped, e.g. to share one
    fit between the variants of a rate-distortion sweep). Returns the INRSet on ``device`` with
    per-round statistics in ``meta["compression"]``. base: the learned init (P,) round 1 started
    from, for the compact store's init-relative codes. Rounds 2-3 and quantization run chunk by
    chunk (:func:`compress_chunk`), so no stage holds a second float copy of the whole set; the
    compact store allocates its bits over the whole set at once.
    """
    n, _, h, w = images.shape
    start = time.perf_counter()
    params = init if init is not None else fit(images, arch, fit_cfg, device=device, progress=progress).params
    params = params.cpu()
    fit_seconds = time.perf_counter() - start
    if cfg.compact is not None:
        rounds = [round_stats("fit", params, arch, images, device, fit_seconds, reused=init is not None)]
        start = time.perf_counter()
        store = compact_store(images, params, arch, cfg.compact, fit_cfg, device, base, progress)
        rounds.append(round_stats("compact", store.dense(), arch, images, device, time.perf_counter() - start,
                             bits=store.bits))
        rounds, psnr = merge_rounds([rounds])
    elif cfg.active:
        size = chunk_size_for(arch, h * w, fit_cfg)
        chunks, store = [], None
        for first in range(0, max(n, 1), size):
            part = compress_chunk(images[first : first + size], params[first : first + size], arch, fit_cfg, cfg,
                                  device, progress, reused=init is not None)
            store = part.store.with_rows(n) if store is None else store
            store.put_rows(first, part.store)
            chunks.append(part.rounds)
        chunks[0][0]["seconds"] = fit_seconds
        rounds, psnr = merge_rounds(chunks)
    else:
        store = DenseStore(params)
        rounds, psnr = merge_rounds([[round_stats("fit", params, arch, images, device, fit_seconds,
                                             reused=init is not None)]])
    meta = dict(meta or {})
    if cfg.compact is not None and cfg.compact.preset:
        meta["preset"] = cfg.compact.preset
    meta["compression"] = {**cfg.to_json(), "rounds": rounds}
    return INRSet(store, arch, h, w, labels, class_names, psnr, meta).to(device)
