"""Rate-distortion sweep (paper Fig. 3): INR variants against JPEG and downsampled JPEG, same images.

For every architecture in the sweep one round-1 fit is shared by all INR variants:
- ``INR fp32``: the fit as it is (dense float32);
- ``INR pruned``: rounds 2-3 (``prune``) on top of it, float32 with a mask;
- ``INR 16-bit``, ``INR 8-bit layer-wise``: the pruned weights with the hidden layers quantized
  (first and last layers float32, as the paper; "16-bit and 8-bit INR combines quantization
  and pruning together", Fig. 3); ``, 16-bit biases``: the hidden biases kept at 16 bits;
- ``INR 8-bit all layers``: every layer at 8 bits (the COIN ablation's effect);
- ``INR 8-bit layer-wise, unpruned`` / ``INR 8-bit all layers, unpruned``: quantization alone;
- with ``compact="compact"``, the store of ``encode --preset compact`` (``rapidinr.codec.compact``:
  every layer on its own set-wide grid, bits per layer by rate-distortion, quantization-aware
  fine-tuning, ANS-coded): ``INR compact`` on the shared round-1 fit (random init), and
  ``INR compact, learned init`` fitted from the learned init that ships for the architecture and
  image size, codes relative to it (what ``encode --preset compact`` does where one ships; the
  file pins the init by its sha256 and does not carry it). Archs without a shipped init have no
  point on that curve.
Bytes are each variant's real .rinr size (``fileformat.serialized_size``) divided by the image
count. JPEG and downsampled JPEG are swept over qualities, and also matched to every INR
variant's bytes per image (``matched``), all scored by the one PSNR.

Beside the paper's JPEG, ``codecs`` adds the field's classical codecs (``rapidinr.codec.classical``:
JPEG 4:2:0 and optimized 4:4:4, WebP, AVIF, JPEG 2000, JPEG XL, ``-x2`` downsampled variants),
either swept over quality (``protocol="quality"``) or, per image, at the best quality whose file
fits each byte cap (``protocol="cap"``, with the best-classical envelope). ``bd`` gives the
Bjøntegaard deltas of every INR variant against every classical curve (:mod:`rapidinr.study.bd`),
``published`` the published curves of the same dataset (:mod:`rapidinr.study.anchors`).

The output follows CompressAI's results files: ``name``, ``description`` and ``results``, here one
entry per variant holding ``bpp``, ``bytes`` and ``psnr`` lists (one point per architecture or
quality).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import torch

from rapidinr.codec.inrset import INRSet
from rapidinr.codec.measure import measure_weights
from rapidinr.codec.prune import PRESETS, PruneConfig
from rapidinr.codec.quantize import QuantConfig
from rapidinr.codec.store import DenseStore, PackedStore
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.errors import UserError
from rapidinr.core.results import results_document
from rapidinr.encoding.compress import CompressConfig, compress, finetune_quantized, preset
from rapidinr.encoding.fit import fit
from rapidinr.encoding.learned_init import fit_settings, resolve_init
from rapidinr.study import anchors, baselines
from rapidinr.study.bd import bd

QUALITIES = (1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100)
PROTOCOLS = ("quality", "cap")
ENVELOPE = "best classical (envelope)"


@dataclass(frozen=True)
class RDConfig:
    """What the sweep runs. Defaults are a quick CPU run; the paper's settings are in the docs."""

    archs: tuple[str, ...] = ("3x15",)  # one rate point per architecture
    fit: FitConfig = field(default_factory=lambda: FitConfig(steps=2000, lr=1e-3))  # round 1 (paper 5000 @ 5e-4)
    prune: PruneConfig = field(default_factory=lambda: PruneConfig(schedule=PRESETS["cifar10"],
                                                                   retrain_steps=1000, retrain_lr=5e-4))
    qualities: tuple[int, ...] = QUALITIES  # JPEG curve
    downscale: tuple[int, ...] = (2, 4)  # JPEG downsampling factors (curve at the first; matched: best of)
    lossless: str | None = None  # "zstd": every INR variant also through the lossless stage (" + zstd")
    finetune_steps: int = 0  # >0 adds quantization-aware fine-tuned 8-bit variants
    codecs: tuple[str, ...] = ()  # classical codecs of the field (rapidinr.codec.classical names), beside JPEG
    protocol: str = "quality"  # "quality": each codec over its quality range; "cap": best quality under each cap
    caps: tuple[float, ...] = (320, 480, 640, 900, 1200)  # bytes per image, for protocol "cap"
    codec_points: int = 13  # qualities per codec curve, for protocol "quality"
    anchors: str | None = None  # "cifar10" / "kodak": published curves beside ours (same dataset only)
    compact: str | None = None  # "compact": add the variants of `encode --preset compact` (module doc)

    def __post_init__(self) -> None:
        if self.compact is not None:
            preset(self.compact)  # one line for an unknown preset
        if self.protocol not in PROTOCOLS:
            raise UserError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if not self.caps or any(not (c > 0) for c in self.caps):
            raise UserError(f"--caps: byte caps must be positive numbers, got {list(self.caps)}")
        for name in self.codecs:
            baselines.parse_codec(name)  # one line for an unknown or absent codec
        if not self.archs:
            raise UserError("--archs: give at least one architecture")
        for q in self.qualities:
            if not (1 <= q <= 100):
                raise UserError(f"--qualities: JPEG quality must be 1..100, got {q}")
        for f in self.downscale:
            if f < 2:
                raise UserError(f"--downscale: factors must be >= 2, got {f}")

    def to_json(self) -> dict:
        fit_json = {k: v for k, v in dataclasses.asdict(self.fit).items() if k != "memory_budget_mb"}
        return {"archs": list(self.archs), "fit": fit_json, "prune": self.prune.to_json(),
                "qualities": list(self.qualities), "downscale": list(self.downscale),
                "lossless": self.lossless, "finetune_steps": self.finetune_steps, "codecs": list(self.codecs),
                "protocol": self.protocol, "caps": list(self.caps), "codec_points": self.codec_points,
                "anchors": self.anchors,
                "compact": {"preset": self.compact, **preset(self.compact).to_json()} if self.compact else None}


def _entry(description: str) -> dict:
    return {"description": description, "bpp": [], "bytes": [], "psnr": [], "psnr_min": []}


def _add(entry: dict, bytes_per_image: float, psnr: torch.Tensor, pixels: int, **extra) -> None:
    entry["bytes"].append(round(float(bytes_per_image), 3))
    entry["bpp"].append(round(8 * float(bytes_per_image) / pixels, 5))
    entry["psnr"].append(round(float(psnr.mean()), 4))
    entry["psnr_min"].append(round(float(psnr.min()), 4))
    for key, value in extra.items():
        entry.setdefault(key, []).append(value)


def _inr_variants(images, arch: Arch, cfg: RDConfig, device, progress: bool):
    """(name, description, store) for every INR variant of one architecture, sharing one fit."""
    fitted = fit(images, arch, cfg.fit, device=device, progress=progress).params
    pruned = compress(images, arch, cfg.fit, CompressConfig(prune=cfg.prune), device, init=fitted,
                      progress=progress)
    rounds = pruned.meta["compression"]["rounds"]
    pruned_params = pruned.dense_params().cpu()
    out = []
    lossless = (None, "zstd") if cfg.lossless else (None,)
    for ll in lossless:
        tag = " + zstd" if ll else ""

        def packed(params, bits, layers="hidden", bias_bits=None):
            return PackedStore.from_params(params, arch, bits, layers, ll, bias_bits)

        out += [
            (f"INR fp32{tag}", "round 1 only, float32" + (", zstd" if ll else " (dense)"),
             packed(fitted, 32) if ll else DenseStore(fitted)),
            (f"INR pruned{tag}", "rounds 2-3, float32 + mask", packed(pruned_params, 32)),
            (f"INR 16-bit{tag}", "pruned, hidden layers 16-bit, first/last float32", packed(pruned_params, 16)),
            (f"INR 8-bit layer-wise{tag}", "pruned, hidden layers (weights and biases) 8-bit, first/last "
             "float32 (the paper)", packed(pruned_params, 8)),
            (f"INR 8-bit layer-wise, 16-bit biases{tag}", "pruned, hidden weights 8-bit, hidden biases 16-bit, "
             "first/last float32", packed(pruned_params, 8, bias_bits=16)),
            (f"INR 8-bit all layers{tag}", "pruned, every layer 8-bit", packed(pruned_params, 8, "all")),
            (f"INR 8-bit layer-wise, unpruned{tag}", "round 1, hidden layers 8-bit", packed(fitted, 8)),
            (f"INR 8-bit layer-wise, 16-bit biases, unpruned{tag}", "round 1, hidden weights 8-bit, biases 16-bit",
             packed(fitted, 8, bias_bits=16)),
            (f"INR 8-bit all layers, unpruned{tag}", "round 1, every layer 8-bit", packed(fitted, 8, "all")),
        ]
    if cfg.finetune_steps:
        for layers, bias_bits, label in (("hidden", 16, "layer-wise, 16-bit biases"), ("all", None, "all layers")):
            quant = QuantConfig(8, layers, bias_bits, cfg.finetune_steps)
            tuned = finetune_quantized(images, pruned_params, arch, quant, cfg.fit, device, progress)
            for ll in lossless:
                out.append((f"INR 8-bit {label} + QAT" + (" + zstd" if ll else ""),
                            f"pruned, 8-bit {layers}, {cfg.finetune_steps} QAT steps",
                            PackedStore.from_params(tuned, arch, 8, layers, ll, bias_bits)))
    if cfg.compact:
        out += _compact_variants(images, arch, fitted, cfg, device, progress)
    return out, rounds


def _compact_variants(images, arch: Arch, fitted: torch.Tensor, cfg: RDConfig, device, progress: bool):
    """(name, description, store, extra) of ``encode --preset <cfg.compact>`` on this architecture: on
    the shared round-1 fit, and fitted from the learned init that ships for it (if one does)."""
    _, _, h, w = images.shape
    compact = CompressConfig(compact=preset(cfg.compact))
    how = "every layer on its own set-wide grid, bits per layer by rate-distortion, QAT, ANS-coded"
    store = compress(images, arch, cfg.fit, compact, device, init=fitted, progress=progress).store
    out = [("INR compact", f"--preset {cfg.compact} on the round-1 fit (random init): {how}", store,
            {"init": "random", "bits": store.bits})]
    try:
        learned = resolve_init("learned", arch, h, w)
    except UserError:  # no learned init ships for this arch and size: no point on that curve
        return out
    # the study's steps at the init's recommended learning rate (chosen on held-out images)
    fit_cfg = dataclasses.replace(cfg.fit, **fit_settings(learned, steps=cfg.fit.steps))
    params = fit(images, arch, fit_cfg, device=device, init=learned.params, progress=progress).params
    store = compress(images, arch, fit_cfg, compact, device, init=params, progress=progress,
                     base=learned.params).store
    name = learned.info.get("file", "learned init")
    description = (f"--preset {cfg.compact} fitted from the shipped learned init (lr {fit_cfg.lr:g}), codes "
                   f"relative to it (pinned by its sha256, not stored): {how}")
    out.append(("INR compact, learned init", description, store, {"init": name, "bits": store.bits}))
    return out


def _dataset_of(source: str) -> str:
    """The dataset a source string names, for matching published curves: cifar10 (torchvision,
    lossless), kodak (full-size photos), or the source's own name (crops, JPEG folders, ...)."""
    return source.split(":", 1)[0]


def check_anchors(cfg: RDConfig, source: str, size: tuple[int, int]) -> dict:
    """The published curves to draw beside this run; a clear error where the dataset differs."""
    if not cfg.anchors:
        return {}
    dataset = _dataset_of(source)
    if dataset != cfg.anchors:
        raise UserError(f"--anchors {cfg.anchors}: these images are {dataset or 'unnamed'} ({source or 'a tensor'}), "
                        f"not {cfg.anchors}; published curves are only drawn beside the same dataset")
    return anchors.to_results(cfg.anchors, size)


def check_caps(images: torch.Tensor, cfg: RDConfig) -> dict[str, int]:
    """Smallest file each codec makes of these images; a cap below all of them is an error."""
    smallest = {name: baselines.smallest_file(images, name) for name in cfg.codecs}
    if cfg.protocol == "cap" and smallest:
        floor = min(smallest.values())
        low = [c for c in cfg.caps if c < floor]
        if low:
            best = min(smallest, key=smallest.get)
            raise UserError(f"--caps {low[0]:g}: below the smallest file any codec makes of these images "
                            f"({floor} B, {best} at its lowest quality)")
    return smallest


def classical(images: torch.Tensor, cfg: RDConfig, pixels: int) -> dict[str, dict]:
    """Entries for every codec in ``cfg.codecs`` (and the envelope, protocol "cap").

    A cap a codec cannot meet on every image is kept as a point with ``psnr`` None and its
    ``unmet`` count: reported as unmet, never as a number."""
    out: dict[str, dict] = {}
    per_cap: list[dict[str, baselines.CodecResult]] = [{} for _ in cfg.caps]
    for name in cfg.codecs:
        spec = baselines.parse_codec(name)
        entry = _entry(f"{spec.description}; real file bytes")
        if cfg.protocol == "quality":
            for q in baselines.quality_grid(spec, cfg.codec_points):
                r = baselines.at_quality(images, spec, q)
                _add(entry, float(r.bytes.double().mean()), r.psnr, pixels, quality=q)
        else:
            entry.update(cap=[], unmet=[], quality_mean=[])
            for k, cap in enumerate(cfg.caps):
                r = baselines.at_cap(images, spec, cap)
                per_cap[k][name] = r
                _add_cap(entry, cap, r, pixels)
        out[name] = entry
    if cfg.protocol == "cap" and cfg.codecs:
        env = _entry("per cap, the classical codec with the best mean PSNR among those meeting the cap on every image")
        env.update(cap=[], unmet=[], best=[])
        for k, cap in enumerate(cfg.caps):
            best = baselines.envelope(per_cap[k])
            env["cap"].append(cap)
            env["best"].append(best["best"])
            env["unmet"].append(0 if best["best"] else len(images))
            _add_point(env, best["bytes_mean"], best["psnr_mean"], None, pixels)
        out[ENVELOPE] = env
    return out


def _add_point(entry: dict, bytes_mean, psnr_mean, psnr_min, pixels: int) -> None:
    entry["bytes"].append(None if bytes_mean is None else round(float(bytes_mean), 3))
    entry["bpp"].append(None if bytes_mean is None else round(8 * float(bytes_mean) / pixels, 5))
    entry["psnr"].append(None if psnr_mean is None else round(float(psnr_mean), 4))
    entry["psnr_min"].append(None if psnr_min is None else round(float(psnr_min), 4))


def _add_cap(entry: dict, cap: float, r: baselines.CodecResult, pixels: int) -> None:
    met = r.unmet == 0
    entry["cap"].append(cap)
    entry["unmet"].append(r.unmet)
    entry["quality_mean"].append(round(float(r.quality.double().mean()), 2))
    _add_point(entry, r.bytes.double().mean() if met else None, r.psnr.mean() if met else None,
               r.psnr.min() if met else None, pixels)


def bd_table(results: dict[str, dict], inr_names: list[str], anchor_names: list[str]) -> list[dict]:
    """BD-rate / BD-PSNR (bytes per image, PCHIP, overlap only) of every INR variant against every
    classical curve; ``None`` with a note where the curves do not overlap enough."""
    rows = []
    for test in inr_names:
        for anchor in anchor_names:
            t, a = results[test], results[anchor]
            rows.append({"test": test, "anchor": anchor, **bd(a["bytes"], a["psnr"], t["bytes"], t["psnr"])})
    return rows


def sweep(images: torch.Tensor, cfg: RDConfig = RDConfig(), device="cpu", progress: bool = True,
          source: str = "") -> dict:
    """Run the sweep on uint8 images (N, C, H, W); returns the results dict (see module doc)."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[0] == 0:
        raise UserError("rd: images must be a non-empty uint8 tensor N×C×H×W")
    n, c, h, w = images.shape
    pixels = h * w
    published = check_anchors(cfg, source, (h, w))
    smallest = check_caps(images, cfg)
    started = time.perf_counter()
    results: dict[str, dict] = {}
    matched = []
    for arch_text in cfg.archs:
        arch = Arch.parse(arch_text, c)
        variants, rounds = _inr_variants(images, arch, cfg, device, progress)
        for name, description, store, *extra in variants:
            inrs = INRSet(store, arch, h, w)
            psnr = measure_weights(inrs.dense_params().cpu(), arch, images, device)
            inrs.psnr = psnr
            info = inrs.info()
            bytes_per_image = info["bytes_per_image"]
            entry = results.setdefault(name, _entry(description))
            _add(entry, bytes_per_image, psnr, pixels, arch=arch.name, sparsity=info["sparsity"],
                 device_bytes_per_image=round(info["device_bytes"] / n, 2), **(extra[0] if extra else {}))
            jpeg = baselines.jpeg_at_budget(images, bytes_per_image)
            down = baselines.jpeg_downsampled_at_budget(images, bytes_per_image, cfg.downscale)
            matched.append({
                "variant": name, "arch": arch.name, "inr_bytes": round(bytes_per_image, 2),
                "inr_psnr": round(float(psnr.mean()), 4),
                "jpeg_psnr": round(float(jpeg.psnr.mean()), 4),
                "jpeg_bytes": round(float(jpeg.bytes.double().mean()), 2),
                "jpeg_quality_mean": round(float(jpeg.quality.double().mean()), 2),
                "jpeg_scan_bytes_estimate": round(float(jpeg.scan_bytes.double().mean()), 2),
                "jpeg_over_budget": int(jpeg.over_budget.sum()),
                "jpeg_downsampled_psnr": round(float(down.psnr.mean()), 4),
                "jpeg_downsampled_bytes": round(float(down.bytes.double().mean()), 2),
                "jpeg_downsampled_over_budget": int(down.over_budget.sum()),
                "inr_minus_jpeg_db": round(float(psnr.mean() - jpeg.psnr.mean()), 4),
                "inr_minus_downsampled_db": round(float(psnr.mean() - down.psnr.mean()), 4),
            })
        results.setdefault("_rounds", {})[arch.name] = rounds
    rounds = results.pop("_rounds")
    for label, factor, optimize in [("JPEG", 1, True), ("JPEG standard tables", 1, False),
                                    (f"JPEG downsampled x{cfg.downscale[0]}", cfg.downscale[0], True)]:
        desc = {"JPEG": "Pillow/libjpeg-turbo, optimized Huffman tables, 4:2:0; real file bytes",
                "JPEG standard tables": "Pillow's default (standard Huffman tables); real file bytes"}.get(
            label, f"downscale x{factor} (bicubic), JPEG, upscale back; real file bytes")
        entry = _entry(desc)
        for q in cfg.qualities:
            r = baselines.jpeg(images, q, factor, optimize)
            _add(entry, float(r.bytes.double().mean()), r.psnr, pixels, quality=q,
                 scan_bytes_estimate=round(float(r.scan_bytes.double().mean()), 2))
        results[label] = entry
    inr_names = [k for k in results if k.startswith("INR")]
    results.update(classical(images, cfg, pixels))
    anchor_names = [k for k in results if not k.startswith("INR")]
    doc = results_document(
        f"rapidinr-rd {source or 'images'} {h}x{w}",
        "PSNR (8-bit rounded, mean over images) against bytes per image from real file sizes; JPEG "
        "scan_bytes_estimate is the entropy-coded data without headers (an estimate). Protocol 'cap': per "
        "image the best quality whose file fits the cap (psnr None where a codec cannot meet it on every image). "
        "'published' holds other authors' curves on the same dataset, never our measurements.",
        cfg.to_json(), results)
    doc["hardware"]["device"] = str(device)
    doc.update({"source": source, "images": n, "height": h, "width": w, "channels": c,
                "seconds": round(time.perf_counter() - started, 2), "rounds": rounds, "matched": matched,
                "smallest_file": smallest, "bd": bd_table(results, inr_names, anchor_names),
                "published": published})
    return doc


def cap_table(results: dict) -> str:
    """A text table per cap: every classical codec at the cap, and the INR variants whose bytes per
    image fit it (the largest architecture that fits), mean PSNR and mean real bytes; "unmet" where
    a codec cannot meet the cap on every image."""
    entries = results["results"]
    caps = results["settings"]["caps"]
    lines = []
    for k, cap in enumerate(caps):
        lines.append(f"cap {cap:g} B/image")
        for name, e in entries.items():
            if "cap" in e:
                cell = (f"{e['psnr'][k]:6.2f} dB {e['bytes'][k]:7.1f} B" if e["psnr"][k] is not None
                        else f"unmet ({e['unmet'][k]}/{results['images']} images over the cap)")
                best = f"  [{e['best'][k]}]" if "best" in e and e["best"][k] else ""
                lines.append(f"  {name:<44} {cell}{best}")
            elif name.startswith("INR"):
                fits = [(b, p, a) for b, p, a in zip(e["bytes"], e["psnr"], e.get("arch", [""] * len(e["bytes"])))
                        if b is not None and b <= cap]
                if fits:
                    b, p, a = max(fits)
                    lines.append(f"  {name:<44} {p:6.2f} dB {b:7.1f} B  [{a}]")
    return "\n".join(lines)
