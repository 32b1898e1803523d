"""The compact store against today's 8-bit layer-wise store, JPEG 4:4:4 and WebP (issue 13).

Images: 32×32 crops of the 24 Kodak photos (../shared/data/kodak), each photo first shrunk 4×
(bicubic, as ``load_sample_crops`` does for its photos), crops at random positions (seed 0).
Every fit: 2000 Adam steps (lr 1e-3 from the random SIREN init; from a learned init, its
recommended rate). The learned inits are the shipped CIFAR-10 ones (data/init-cifar10-<arch>-32x32),
which never saw a Kodak image.

Ablation at 3x15, steps added one at a time:
  8-bit layer-wise   today's store: hidden weights 8-bit, per-image scales, first/last layer float32
  + zstd             today's lossless stage
  + entropy          the same widths (hidden weights 8 bits, the rest 16) in the compact store:
                     one set-wide step per tensor, codes ANS-coded under one fitted model per tensor
  + learned-init fit the fit starts from the learned init; the store still codes w itself
  + init-relative    the store codes w - init (init pinned by its hash to the shipped file)
  + RD bits          bits per tensor by rate-distortion (the preset's lambda)
  + QAT              the preset's quantization-aware fine-tuning at those bits (= the compact preset)
  + rate term        the same fine-tuning with ``--rate`` times mean |code| added to its loss
Then the rate set by --arch: today's store and the compact preset (with the random init, and
with the shipped learned init where one ships for the arch), BD-rate (a local Bjøntegaard
function, below: no shared BD function on this branch), and the comparison with optimized 4:4:4
JPEG (libjpeg-turbo, ``optimize=True, subsampling=0``) and WebP (libwebp, method 6) at per-image
byte caps, all through Pillow. Bytes are whole .rinr files (headers included) over the images.

    OMP_NUM_THREADS=1 python benchmarks/compact_store.py            # 64 crops, a few minutes
    python benchmarks/compact_store.py --quick                       # a smoke test

Writes benchmarks/results/compact_store-cpu.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rapidinr.codec.compact import CompactStore, groups
from rapidinr.codec.inrset import INRSet, load
from rapidinr.codec.store import PackedStore
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.metrics import psnr
from rapidinr.core.results import results_document, write_results
from rapidinr.encoding.compress import PRESETS, compact_store
from rapidinr.encoding.fit import fit
from rapidinr.encoding.learned_init import load_init

ROOT = Path(__file__).resolve().parent.parent
KODAK = ROOT.parent / "shared" / "data" / "kodak"
if not KODAK.is_dir():
    KODAK = Path("/work/shared/data/kodak")
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT / "data"
CAPS = (320, 400, 500, 600, 700, 800, 900)


def kodak_crops(count: int, seed: int = 0, size: int = 32, downscale: int = 4) -> torch.Tensor:
    """(count, 3, size, size) uint8 crops of the Kodak photos shrunk ``downscale``×, photo i % 24."""
    rng = np.random.default_rng(seed)
    photos = []
    for path in sorted(KODAK.glob("kodim*.png")):
        image = Image.open(path).convert("RGB")
        photos.append(np.asarray(image.resize((image.width // downscale, image.height // downscale),
                                              Image.Resampling.BICUBIC)))
    crops = []
    for i in range(count):
        photo = photos[i % len(photos)]
        top, left = int(rng.integers(0, photo.shape[0] - size + 1)), int(rng.integers(0, photo.shape[1] - size + 1))
        crops.append(photo[top : top + size, left : left + size].transpose(2, 0, 1))
    return torch.from_numpy(np.stack(crops))


def classic(images: torch.Tensor, codec: str, cap: int) -> tuple[float, float, int]:
    """(mean bytes, mean PSNR, images over the cap) of ``codec`` at the best quality within ``cap``."""
    sizes, recs, over = [], [], 0
    for image in images:
        pil = Image.fromarray(image.permute(1, 2, 0).numpy())
        best = None
        for q in range(100, 0, -1) if codec == "jpeg" else range(100, -1, -1):
            out = io.BytesIO()
            if codec == "jpeg":
                pil.save(out, "JPEG", quality=q, optimize=True, subsampling=0)
            else:
                pil.save(out, "WEBP", quality=q, method=6)
            best = out.getvalue()
            if len(best) <= cap:
                break
        else:
            over += 1
        sizes.append(len(best))
        recs.append(torch.from_numpy(np.asarray(Image.open(io.BytesIO(best)).convert("RGB")).copy()).permute(2, 0, 1))
    return float(np.mean(sizes)), float(psnr(images, torch.stack(recs)).mean()), over


def bd_rate(rate_a, psnr_a, rate_b, psnr_b) -> float | None:
    """Bjøntegaard delta rate (%) of curve b against curve a: log-rate polynomial in PSNR
    (degree up to 3), integrated over the overlapping PSNR range. None without an overlap."""
    la, lb = np.log(np.asarray(rate_a, float)), np.log(np.asarray(rate_b, float))
    pa, pb = np.asarray(psnr_a, float), np.asarray(psnr_b, float)
    low, high = max(pa.min(), pb.min()), min(pa.max(), pb.max())
    if high <= low or len(pa) < 2 or len(pb) < 2:
        return None
    fa = np.polyint(np.polyfit(pa, la, min(3, len(pa) - 1)))
    fb = np.polyint(np.polyfit(pb, lb, min(3, len(pb) - 1)))
    diff = ((np.polyval(fb, high) - np.polyval(fb, low)) - (np.polyval(fa, high) - np.polyval(fa, low))) / (high - low)
    return float((np.exp(diff) - 1) * 100)


def at_bytes(rates, psnrs, target: float) -> float | None:
    """PSNR of a curve at ``target`` bytes (linear in log bytes), None outside the curve."""
    order = np.argsort(rates)
    r, p = np.log(np.asarray(rates, float)[order]), np.asarray(psnrs, float)[order]
    if not r[0] <= np.log(target) <= r[-1]:
        return None
    return float(np.interp(np.log(target), r, p))


def measure(name: str, inrs: INRSet, images: torch.Tensor, folder: Path) -> dict:
    path = folder / f"{name.replace(' ', '_').replace('+', 'p')}.rinr"
    file_bytes = inrs.save(path)
    loaded = load(path)
    header_bytes = 8 + int.from_bytes(path.read_bytes()[:8], "little")  # safetensors + JSON header, once per file
    return {"row": name, "bytes_per_image": file_bytes / len(images), "file_header_bytes": header_bytes,
            "psnr": float(psnr(images, loaded.decode()).mean()),
            "device_bytes_per_image": loaded.store.nbytes / len(images), "_set": loaded}


def decode_rate(sets: list[INRSet], repeats: int) -> list[float]:
    """Images/s of ``decode()`` of every set, interleaved repeat by repeat (the machine is noisy)."""
    times = [[] for _ in sets]
    for _ in range(repeats):
        for i, s in enumerate(sets):
            began = time.perf_counter()
            s.decode()
            times[i].append(time.perf_counter() - began)
    return [len(s) / min(t) for s, t in zip(sets, times)]  # the best of the repeats: the least disturbed


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--qat", type=int, default=200, help="quantization-aware fine-tuning steps")
    parser.add_argument("--rate", type=float, default=3e-4, help="weight of the rate term in the QAT row after it")
    parser.add_argument("--archs", default="3x10,3x15,3x20,3x25")
    parser.add_argument("--lams", default="0.28,1.12", help="other lambdas (bits per weight per dB) tried with "
                        "the preset at 3x15")
    parser.add_argument("--quick", action="store_true", help="8 crops, 100 steps: a smoke test")
    parser.add_argument("--out", default=str(RESULTS / "compact_store-cpu.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.steps, args.qat, args.archs, args.lams = 8, 100, 10, "3x10,3x15", "1.12"
    torch.manual_seed(0)
    images = kodak_crops(args.images)
    fit_cfg = FitConfig(steps=args.steps)
    folder = Path(tempfile.mkdtemp(prefix="compact_store-"))
    rows, curves = [], {"baseline": [], "compact, random init": [], "compact preset": []}
    began = time.perf_counter()
    preset = dataclasses.replace(PRESETS["compact"], finetune_steps=args.qat)

    def compact(params, arch, cfg, init=None) -> INRSet:
        return INRSet(compact_store(images, params, arch, cfg, fit_cfg, "cpu", base=init, progress=False), arch, 32, 32)

    fits, learned_fits, inits = {}, {}, {}
    for arch_text in args.archs.split(","):
        arch = Arch.parse(arch_text, 3)
        fits[arch_text] = fit(images, arch, fit_cfg, progress=False).params
        curves["baseline"].append(measure(f"{arch_text} 8-bit layer-wise", INRSet(
            PackedStore.from_params(fits[arch_text], arch, 8, "hidden"), arch, 32, 32), images, folder))
        curves["compact, random init"].append(measure(f"{arch_text} compact, random init", compact(
            fits[arch_text], arch, preset), images, folder))
        init_path = DATA / f"init-cifar10-{arch_text}-32x32.safetensors"
        if init_path.is_file():  # the preset with the learned init that ships for this arch
            learned = load_init(init_path)
            inits[arch_text] = learned.params
            learned_fits[arch_text] = fit(images, arch, replace(fit_cfg, lr=(learned.recommended_fit or {}).get(
                "lr", fit_cfg.lr)), init=learned.params, progress=False).params
            curves["compact preset"].append(measure(f"{arch_text} compact preset", compact(
                learned_fits[arch_text], arch, preset, learned.params), images, folder))
        line = " | ".join(f"{k} {v[-1]['bytes_per_image']:.0f} B {v[-1]['psnr']:.2f} dB" for k, v in curves.items()
                          if v and v[-1]["row"].startswith(arch_text))
        print(f"{arch_text}: {line}  ({time.perf_counter() - began:.0f} s)", flush=True)

    arch = Arch.parse("3x15", 3)
    params, learned_params, init = fits["3x15"], learned_fits["3x15"], inits["3x15"]
    lw_bits = [16, 16] + [8, 16] * (arch.layers - 1) + [16, 16]  # hidden weights at 8 bits, the rest 16
    rd = dataclasses.replace(preset, finetune_steps=0)
    rows.append(curves["baseline"][list(fits).index("3x15")] | {"row": "8-bit layer-wise (today)"})
    rows.append(measure("+ zstd", INRSet(PackedStore.from_params(params, arch, 8, "hidden", lossless="zstd"),
                                         arch, 32, 32), images, folder))
    rows.append(measure("+ entropy (same widths)", INRSet(CompactStore.from_params(params, arch, lw_bits),
                                                          arch, 32, 32), images, folder))
    rows.append(measure("+ learned-init fit", INRSet(CompactStore.from_params(learned_params, arch, lw_bits),
                                                     arch, 32, 32), images, folder))
    rows.append(measure("+ init-relative codes", INRSet(CompactStore.from_params(
        learned_params, arch, lw_bits, init=init, store_init=False), arch, 32, 32), images, folder))
    rows.append(measure("+ RD bits", compact(learned_params, arch, rd, init), images, folder))
    rows.append(measure("+ QAT (= preset)", compact(learned_params, arch, preset, init), images, folder))
    rows.append(measure("+ rate term (QAT-phase L1)", compact(learned_params, arch, dataclasses.replace(
        preset, rate_weight=args.rate), init), images, folder))
    rows.append(measure("RD bits + QAT, random init", compact(params, arch, preset), images, folder))
    lam_sweep = []
    for lam in (float(x) for x in args.lams.split(",")):  # the preset at 3x15 with other lambdas
        lam_sweep.append(measure(f"3x15 preset, lambda {lam:g}", compact(learned_params, arch, dataclasses.replace(
            preset, rd_lambda=lam), init), images, folder))
        print(f"lambda {lam:g}: {lam_sweep[-1]['bytes_per_image']:.0f} B {lam_sweep[-1]['psnr']:.2f} dB "
              f"({time.perf_counter() - began:.0f} s)", flush=True)
    rates = decode_rate([r["_set"] for r in rows], 3 if args.quick else 10)
    base_rate = rates[0]
    b_rates = [r["bytes_per_image"] for r in curves["baseline"]]
    b_psnr = [r["psnr"] for r in curves["baseline"]]
    print(f"\nablation at 3x15, {args.images} Kodak crops 32x32, {args.steps} steps, "
          f"lambda {preset.rd_lambda:g} bits/weight/dB:")
    print(f"{'row':<28}{'B/image':>9}{'PSNR dB':>9}{'device B':>10}{'decode img/s':>14}{'vs today':>9}")
    for r, rate in zip(rows, rates):
        r["decode_images_per_s"], r["decode_vs_today"] = rate, rate / base_rate
        print(f"{r['row']:<28}{r['bytes_per_image']:>9.1f}{r['psnr']:>9.2f}{r['device_bytes_per_image']:>10.1f}"
              f"{rate:>14.0f}{rate / base_rate:>9.2f}")
    bd = bd_rate(b_rates, b_psnr, [r["bytes_per_image"] for r in curves["compact, random init"]],
                 [r["psnr"] for r in curves["compact, random init"]])
    c_rates = [r["bytes_per_image"] for r in curves["compact preset"]]
    c_psnr = [r["psnr"] for r in curves["compact preset"]]
    bd_preset = bd_rate(b_rates, b_psnr, c_rates, c_psnr)
    print(f"\nBD-rate against today's 8-bit layer-wise store (random init, archs {args.archs}): compact preset "
          f"with the random init {bd if bd is None else round(bd, 1)} %; compact preset with the shipped learned inits "
          f"(archs {', '.join(learned_fits)}) {bd_preset if bd_preset is None else round(bd_preset, 1)} %")

    classics = []
    r_rates = [r["bytes_per_image"] for r in curves["compact, random init"]]
    r_psnr = [r["psnr"] for r in curves["compact, random init"]]
    print("\ncompact preset at the JPEG's mean bytes (log-bytes interpolation; '-' outside the curve): "
          "with the learned inits | with the random init")
    print(f"{'cap B':>6}{'JPEG444 B':>10}{'dB':>7}{'over':>5}{'WebP B':>8}{'dB':>7}{'over':>5}{'learned':>9}{'gain':>7}"
          f"{'random':>9}{'gain':>7}")
    for cap in CAPS:
        jb, jp, jo = classic(images, "jpeg", cap)
        wb, wp, wo = classic(images, "webp", cap)
        mine = at_bytes(c_rates, c_psnr, jb)
        rand = at_bytes(r_rates, r_psnr, jb)
        classics.append({"cap": cap, "jpeg444_bytes": jb, "jpeg444_psnr": jp, "jpeg444_over_cap": jo,
                         "webp_bytes": wb, "webp_psnr": wp, "webp_over_cap": wo, "compact_psnr_at_jpeg_bytes": mine,
                         "gain_over_jpeg_db": None if mine is None else mine - jp,
                         "compact_random_init_psnr_at_jpeg_bytes": rand,
                         "random_init_gain_over_jpeg_db": None if rand is None else rand - jp})
        show = lambda v: "-" if v is None else f"{v:+.2f}"
        print(f"{cap:>6}{jb:>10.0f}{jp:>7.2f}{jo:>5}{wb:>8.0f}{wp:>7.2f}{wo:>5}"
              f"{'-' if mine is None else f'{mine:.2f}':>9}{show(None if mine is None else mine - jp):>7}"
              f"{'-' if rand is None else f'{rand:.2f}':>9}{show(None if rand is None else rand - jp):>7}")
    ok = [c for c in classics if c["webp_over_cap"] == 0]
    bd_webp = bd_rate([c["webp_bytes"] for c in ok], [c["webp_psnr"] for c in ok], c_rates, c_psnr)
    okj = [c for c in classics if c["jpeg444_over_cap"] == 0]
    bd_jpeg = bd_rate([c["jpeg444_bytes"] for c in okj], [c["jpeg444_psnr"] for c in okj], c_rates, c_psnr)
    bd_webp_r = bd_rate([c["webp_bytes"] for c in ok], [c["webp_psnr"] for c in ok], r_rates, r_psnr)
    bd_jpeg_r = bd_rate([c["jpeg444_bytes"] for c in okj], [c["jpeg444_psnr"] for c in okj], r_rates, r_psnr)
    fmt = lambda v: "n/a" if v is None else f"{v:+.1f} %"
    print(f"BD-rate of the compact preset (learned inits | random init) against WebP: {fmt(bd_webp)} | "
          f"{fmt(bd_webp_r)}; against JPEG 4:4:4: {fmt(bd_jpeg)} | {fmt(bd_jpeg_r)} (caps where no image is over)")
    print(f"total {time.perf_counter() - began:.0f} s")
    strip = lambda r: {k: v for k, v in r.items() if k != "_set"}
    settings = {"images": args.images, "crops": "Kodak 24 photos shrunk 4x, 32x32, seed 0", "steps": args.steps,
                "lambda": preset.rd_lambda, "qat_steps": args.qat, "rate_weight": args.rate, "archs": args.archs,
                "lambdas": args.lams, "inits": [f"init-cifar10-{a}-32x32.safetensors" for a in learned_fits],
                "seconds": round(time.perf_counter() - began, 1)}
    results = {"ablation": [strip(r) for r in rows], "curves": {k: [strip(r) for r in v] for k, v in curves.items()},
               "lambda_sweep_3x15": [strip(r) for r in lam_sweep],
               "bd_rate_vs_today_pct": {"compact_random_init": bd, "compact_preset": bd_preset},
               "bd_rate_vs_webp_pct": {"compact_preset": bd_webp, "compact_random_init": bd_webp_r},
               "bd_rate_vs_jpeg444_pct": {"compact_preset": bd_jpeg, "compact_random_init": bd_jpeg_r},
               "bd_function": "local (benchmarks/compact_store.py: bd_rate)", "classic": classics,
               "groups": len(groups(arch))}
    doc = results_document("compact_store", __doc__.split("\n\n")[0], settings, results)
    if not args.quick:
        write_results(Path(args.out), doc)
    return doc


if __name__ == "__main__":
    main()
