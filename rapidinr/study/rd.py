"""Rate-distortion sweep (paper Fig. 3): INR variants against JPEG and downsampled JPEG, same images.

For every architecture in the sweep one round-1 fit is shared by all INR variants:
- ``INR fp32``: the fit as it is (dense float32);
- ``INR pruned``: rounds 2-3 (``prune``) on top of it, float32 with a mask;
- ``INR 16-bit``, ``INR 8-bit layer-wise``: the pruned weights with the hidden layers quantized
  (first and last layers float32, as the paper; "16-bit and 8-bit INR combines quantization
  and pruning together", Fig. 3); ``, 16-bit biases``: the hidden biases kept at 16 bits;
- ``INR 8-bit all layers``: every layer at 8 bits (the COIN ablation's effect);
- ``INR 8-bit layer-wise, unpruned`` / ``INR 8-bit all layers, unpruned``: quantization alone.
Bytes are each variant's real .rinr size (``fileformat.serialized_size``) divided by the image
count. JPEG and downsampled JPEG are swept over qualities, and also matched to every INR
variant's bytes per image (``matched``), all scored by the one PSNR.

The output follows CompressAI's results files: ``name``, ``description`` and ``results``, here one
entry per variant holding ``bpp``, ``bytes`` and ``psnr`` lists (one point per architecture or
quality).
"""
from __future__ import annotations

import dataclasses
import platform
import time
from dataclasses import dataclass, field

import PIL
import torch

from rapidinr.codec.inrset import INRSet
from rapidinr.codec.measure import measure_weights
from rapidinr.codec.prune import PRESETS, PruneConfig
from rapidinr.codec.quantize import QuantConfig
from rapidinr.codec.store import DenseStore, PackedStore
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.errors import UserError
from rapidinr.encoding.compress import CompressConfig, compress, finetune_quantized
from rapidinr.encoding.fit import fit
from rapidinr.study import baselines

QUALITIES = (1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100)


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

    def __post_init__(self) -> None:
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
                "lossless": self.lossless, "finetune_steps": self.finetune_steps}


def environment(device) -> dict:
    """Hardware and versions, recorded beside every number."""
    out = {"python": platform.python_version(), "torch": torch.__version__, "pillow": PIL.__version__,
           "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
           "cpu_threads": torch.get_num_threads(), "device": str(device)}
    if torch.device(device).type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return out


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
    pruned_params = pruned.params.cpu()
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
    return out, rounds


def sweep(images: torch.Tensor, cfg: RDConfig = RDConfig(), device="cpu", progress: bool = True,
          source: str = "") -> dict:
    """Run the sweep on uint8 images (N, C, H, W); returns the results dict (see module doc)."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[0] == 0:
        raise UserError("rd: images must be a non-empty uint8 tensor N×C×H×W")
    n, c, h, w = images.shape
    pixels = h * w
    started = time.perf_counter()
    results: dict[str, dict] = {}
    matched = []
    ladders = {1: baselines.ladder(images, 1)}
    ladders.update({f: baselines.ladder(images, f) for f in cfg.downscale})
    for arch_text in cfg.archs:
        arch = Arch.parse(arch_text, c)
        variants, rounds = _inr_variants(images, arch, cfg, device, progress)
        for name, description, store in variants:
            inrs = INRSet(store, arch, h, w)
            psnr = measure_weights(inrs.params.cpu(), arch, images, device)
            inrs.psnr = psnr
            info = inrs.info()
            bytes_per_image = info["bytes_per_image"]
            entry = results.setdefault(name, _entry(description))
            _add(entry, bytes_per_image, psnr, pixels, arch=arch.name, sparsity=info["sparsity"],
                 device_bytes_per_image=round(info["device_bytes"] / n, 2))
            jpeg = baselines.jpeg_at_budget(images, bytes_per_image, ladders[1])
            down = baselines.jpeg_downsampled_at_budget(images, bytes_per_image, cfg.downscale, ladders)
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
    return {
        "name": f"rapidinr-rd {source or 'images'} {h}x{w}",
        "description": "PSNR (8-bit rounded, mean over images) against bytes per image from real file sizes; "
                       "JPEG scan_bytes_estimate is the entropy-coded data without headers (an estimate)",
        "source": source, "images": n, "height": h, "width": w, "channels": c,
        "settings": cfg.to_json(), "environment": environment(device),
        "seconds": round(time.perf_counter() - started, 2),
        "rounds": rounds, "results": results, "matched": matched,
    }
