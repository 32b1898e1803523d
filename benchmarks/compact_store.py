"""The compact store against today's 8-bit layer-wise store, JPEG 4:4:4 and WebP (issue 13).

Images: ``--size`` (32 or 64) square crops of Kodak photos (../shared/data/kodak; ``--photos
A-B``, default 17-24: the photos no shipped init saw, the Kodak inits being meta-learned on
crops of kodim01..16, the CIFAR-10 ones on no Kodak photo), each photo first shrunk 4× (bicubic, ``kodak/4@A-B`` of
rapidinr.sources), crops at random positions (seed 0). Every fit: ``--steps`` Adam steps (lr
1e-3 from the random SIREN init; from a learned init, its recommended rate). The learned inits:
``--inits`` (first: the one the preset picks, CIFAR-10; others measured beside it), the shipped
data/init-<data>-<arch>-<size>x<size> files; where none ships for an arch and size, its rows
say "no init at this size".

Ablation at 3x15, steps added one at a time:
  8-bit layer-wise   today's store: hidden weights 8-bit, per-image scales, first/last layer float32
  + zstd             today's lossless stage
  + entropy          the same widths (hidden weights 8 bits, the rest 16) in the compact store:
                     one set-wide step per tensor, codes ANS-coded under one fitted model per tensor
  + learned-init fit the fit starts from the learned init; the store still codes w itself
  + init-relative    the store codes w - init (init pinned by its hash to the shipped file)
  + RD bits          bits per tensor by rate-distortion (the preset's lambda), one step per tensor
  + image steps      every image also gets its own step multiplier, from its own largest weight in
                     the int8 hidden matrices (one byte per image; the preset's)
  + QAT              the preset's quantization-aware fine-tuning at those bits (= the compact preset)
  + rate term        the same fine-tuning with ``--rate`` times mean |code| added to its loss
Then the rate set by --arch: today's store and the compact preset (with the random init, and
with each learned init where one ships for the arch and size; with the preset's init also without
image steps, side by side), BD-rate (a local Bjøntegaard
function, below: no shared BD function on this branch), and the comparison with optimized 4:4:4
JPEG (libjpeg-turbo, ``optimize=True, subsampling=0``) and WebP (libwebp, method 6) at per-image
byte caps (320..900 B at 32×32, scaled with the pixel count at 64×64), all through Pillow. Bytes
are whole .rinr files (headers included) over the images.

    OMP_NUM_THREADS=1 python benchmarks/compact_store.py            # 64 crops 32x32, a few minutes
    OMP_NUM_THREADS=1 python benchmarks/compact_store.py --size 64 --images 16 --steps 1000 \
        --archs 3x20,3x30,3x40 --ablation-arch 3x30                 # the 64x64 ablation
    python benchmarks/compact_store.py --quick                       # a smoke test

Writes benchmarks/results/compact_store-cpu.json (32×32) or compact_store-64x64-cpu.json.
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
from rapidinr.sources.datasets import load_source

ROOT = Path(__file__).resolve().parent.parent
KODAK = ROOT.parent / "shared" / "data" / "kodak"
if not KODAK.is_dir():
    KODAK = Path("/work/shared/data/kodak")
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT / "data"
CAPS = (320, 400, 500, 600, 700, 800, 900)  # B/image at 32x32; scaled with the pixel count at other sizes


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
    if len(rate_a) < 2 or len(rate_b) < 2:
        return None
    la, lb = np.log(np.asarray(rate_a, float)), np.log(np.asarray(rate_b, float))
    pa, pb = np.asarray(psnr_a, float), np.asarray(psnr_b, float)
    low, high = max(pa.min(), pb.min()), min(pa.max(), pb.max())
    if high <= low:
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


def init_file(data: str, arch_text: str, size: int) -> Path:
    """The shipped learned init meta-learned on ``data`` for ``arch_text`` at size×size."""
    return DATA / f"init-{data}-{arch_text}-{size}x{size}.safetensors"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, choices=(32, 64), default=32, help="crop side in pixels (32 or 64)")
    parser.add_argument("--photos", default="17-24", help="the Kodak photos the crops come from, A-B "
                        "(default 17-24: no shipped init saw them)")
    parser.add_argument("--inits", default="cifar10,kodak", help="learned-init families, the preset's own first "
                        "(data/init-<family>-<arch>-<size>x<size>.safetensors)")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--qat", type=int, default=200, help="quantization-aware fine-tuning steps")
    parser.add_argument("--rate", type=float, default=3e-4, help="weight of the rate term in the QAT row after it")
    parser.add_argument("--archs", default="3x10,3x15,3x20,3x25")
    parser.add_argument("--ablation-arch", default="3x15", help="the arch of the ablation table (one of --archs)")
    parser.add_argument("--lams", default="0.28,1.12", help="other lambdas (bits per weight per dB) tried with "
                        "the preset at the ablation arch")
    parser.add_argument("--quick", action="store_true", help="8 crops, 100 steps: a smoke test")
    parser.add_argument("--out", help="results JSON (default: benchmarks/results/compact_store[-SIZExSIZE]-cpu.json)")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.steps, args.qat, args.archs, args.lams = 8, 100, 10, "3x10,3x15", "1.12"
    archs = args.archs.split(",")
    if args.ablation_arch not in archs:
        raise SystemExit(f"compact_store: --ablation-arch {args.ablation_arch} is not one of --archs {args.archs}")
    size, families = args.size, args.inits.split(",")
    out = Path(args.out) if args.out else RESULTS / ("compact_store-cpu.json" if size == 32
                                                     else f"compact_store-{size}x{size}-cpu.json")
    torch.manual_seed(0)
    source = f"kodak/4@{args.photos}:{KODAK}"
    images = load_source(source, (size, size), limit=args.images, seed=0).images  # (N, 3, size, size)
    fit_cfg = FitConfig(steps=args.steps)
    folder = Path(tempfile.mkdtemp(prefix="compact_store-"))
    preset_curve = f"compact preset, {families[0]} init"
    one_step = f"compact preset, {families[0]} init, one step per tensor"  # the preset before image steps, beside it
    curves = {"baseline": [], "compact, random init": [], **{f"compact preset, {f} init": [] for f in families},
              one_step: []}
    rows, missing = [], []
    began = time.perf_counter()
    preset = dataclasses.replace(PRESETS["compact"], finetune_steps=args.qat)

    def compact(params, arch, cfg, init=None) -> INRSet:
        return INRSet(compact_store(images, params, arch, cfg, fit_cfg, "cpu", base=init, progress=False),
                      arch, size, size)

    fits, learned_fits, inits = {}, {}, {}
    for arch_text in archs:
        arch = Arch.parse(arch_text, 3)
        fits[arch_text] = fit(images, arch, fit_cfg, progress=False).params
        curves["baseline"].append(measure(f"{arch_text} 8-bit layer-wise", INRSet(
            PackedStore.from_params(fits[arch_text], arch, 8, "hidden"), arch, size, size), images, folder))
        curves["compact, random init"].append(measure(f"{arch_text} compact, random init", compact(
            fits[arch_text], arch, preset), images, folder))
        for family in families:  # the preset with each learned init that ships for this arch and size
            path = init_file(family, arch_text, size)
            if not path.is_file():
                missing.append(path.name)
                continue
            learned = load_init(path)
            inits[family, arch_text] = learned.params
            learned_fits[family, arch_text] = fit(images, arch, replace(fit_cfg, lr=(learned.recommended_fit or {}).get(
                "lr", fit_cfg.lr)), init=learned.params, progress=False).params
            name = f"compact preset, {family} init"
            curves[name].append(measure(f"{arch_text} {name}", compact(
                learned_fits[family, arch_text], arch, preset, learned.params), images, folder))
            if family == families[0]:
                curves[one_step].append(measure(f"{arch_text} {one_step}", compact(
                    learned_fits[family, arch_text], arch, dataclasses.replace(preset, image_steps=False),
                    learned.params), images, folder))
        line = " | ".join(f"{k} {v[-1]['bytes_per_image']:.0f} B {v[-1]['psnr']:.2f} dB" for k, v in curves.items()
                          if v and v[-1]["row"].startswith(arch_text + " "))
        print(f"{arch_text}: {line}  ({time.perf_counter() - began:.0f} s)", flush=True)

    arch_text = args.ablation_arch
    arch = Arch.parse(arch_text, 3)
    params = fits[arch_text]
    init = inits.get((families[0], arch_text))
    no_init = f"no init at this size ({init_file(families[0], arch_text, size).name} does not ship)"
    learned_params = learned_fits[families[0], arch_text] if init is not None else params
    lw_bits = [16, 16] + [8, 16] * (arch.layers - 1) + [16, 16]  # hidden weights at 8 bits, the rest 16
    rd = dataclasses.replace(preset, finetune_steps=0, image_steps=False)
    rows.append(curves["baseline"][archs.index(arch_text)] | {"row": "8-bit layer-wise (today)"})
    rows.append(measure("+ zstd", INRSet(PackedStore.from_params(params, arch, 8, "hidden", lossless="zstd"),
                                         arch, size, size), images, folder))
    rows.append(measure("+ entropy (same widths)", INRSet(CompactStore.from_params(params, arch, lw_bits),
                                                          arch, size, size), images, folder))
    if init is not None:
        rows.append(measure("+ learned-init fit", INRSet(CompactStore.from_params(learned_params, arch, lw_bits),
                                                         arch, size, size), images, folder))
        rows.append(measure("+ init-relative codes", INRSet(CompactStore.from_params(
            learned_params, arch, lw_bits, init=init, store_init=False), arch, size, size), images, folder))
    else:
        rows += [{"row": "+ learned-init fit", "note": no_init}, {"row": "+ init-relative codes", "note": no_init}]
    tag = "" if init is not None else " (random init)"
    rows.append(measure("+ RD bits" + tag, compact(learned_params, arch, rd, init), images, folder))
    rows.append(measure("+ image steps" + tag, compact(learned_params, arch, dataclasses.replace(
        rd, image_steps=preset.image_steps), init), images, folder))
    rows.append(measure("+ QAT (= preset)" + tag, compact(learned_params, arch, preset, init), images, folder))
    rows.append(measure("+ rate term (QAT-phase L1)" + tag, compact(learned_params, arch, dataclasses.replace(
        preset, rate_weight=args.rate), init), images, folder))
    if init is not None:
        rows.append(measure("RD bits + QAT, random init", compact(params, arch, preset), images, folder))
    lam_sweep = []
    for lam in (float(x) for x in args.lams.split(",")):  # the preset at the ablation arch with other lambdas
        lam_sweep.append(measure(f"{arch_text} preset{tag}, lambda {lam:g}", compact(
            learned_params, arch, dataclasses.replace(preset, rd_lambda=lam), init), images, folder))
        print(f"lambda {lam:g}: {lam_sweep[-1]['bytes_per_image']:.0f} B {lam_sweep[-1]['psnr']:.2f} dB "
              f"({time.perf_counter() - began:.0f} s)", flush=True)
    measured = [r for r in rows if "_set" in r]
    rates = decode_rate([r["_set"] for r in measured], 3 if args.quick else 10)
    for r, rate in zip(measured, rates):
        r["decode_images_per_s"], r["decode_vs_today"] = rate, rate / rates[0]
    print(f"\nablation at {arch_text}, {args.images} Kodak crops {size}x{size} (photos {args.photos}), {args.steps} "
          f"steps, lambda {preset.rd_lambda:g} bits/weight/dB, learned init: {families[0]}:")
    print(f"{'row':<40}{'B/image':>9}{'PSNR dB':>9}{'device B':>10}{'decode img/s':>14}{'vs today':>9}")
    for r in rows:
        if "_set" not in r:
            print(f"{r['row']:<40}  {r['note']}")
            continue
        print(f"{r['row']:<40}{r['bytes_per_image']:>9.1f}{r['psnr']:>9.2f}{r['device_bytes_per_image']:>10.1f}"
              f"{r['decode_images_per_s']:>14.0f}{r['decode_vs_today']:>9.2f}")

    def curve(name):
        return [r["bytes_per_image"] for r in curves[name]], [r["psnr"] for r in curves[name]]

    fmt = lambda v: "n/a" if v is None else f"{v:+.1f} %"
    b_rates, b_psnr = curve("baseline")
    bd_today = {name: bd_rate(b_rates, b_psnr, *curve(name)) for name in curves if name != "baseline"}
    print(f"\nBD-rate against today's 8-bit layer-wise store (random init, archs {args.archs}):")
    for name, value in bd_today.items():
        print(f"  {name:<34} {fmt(value)}  ({len(curves[name])} archs)")
    if missing:
        print(f"  no init at this size: {', '.join(missing)}")

    classics = []
    compared = [preset_curve, "compact, random init"] + [n for n in curves if n.startswith("compact preset")
                                                         and n != preset_curve]
    caps = [round(c * size * size / 1024) for c in CAPS]
    print(f"\ncompact store at the JPEG's mean bytes (log-bytes interpolation; '-' outside the curve), gain over "
          f"JPEG in dB: {' | '.join(compared)}")
    print(f"{'cap B':>6}{'JPEG444 B':>10}{'dB':>7}{'over':>5}{'WebP B':>8}{'dB':>7}{'over':>5}"
          + "".join(f"{'dB':>8}{'gain':>7}" for _ in compared))
    show = lambda v: "-" if v is None else f"{v:+.2f}"
    for cap in caps:
        jb, jp, jo = classic(images, "jpeg", cap)
        wb, wp, wo = classic(images, "webp", cap)
        at = {name: at_bytes(*curve(name), jb) if curves[name] else None for name in compared}
        mine, rand = at[preset_curve], at["compact, random init"]
        classics.append({"cap": cap, "jpeg444_bytes": jb, "jpeg444_psnr": jp, "jpeg444_over_cap": jo,
                         "webp_bytes": wb, "webp_psnr": wp, "webp_over_cap": wo, "compact_psnr_at_jpeg_bytes": mine,
                         "gain_over_jpeg_db": None if mine is None else mine - jp,
                         "compact_random_init_psnr_at_jpeg_bytes": rand,
                         "random_init_gain_over_jpeg_db": None if rand is None else rand - jp,
                         "psnr_at_jpeg_bytes": at})
        print(f"{cap:>6}{jb:>10.0f}{jp:>7.2f}{jo:>5}{wb:>8.0f}{wp:>7.2f}{wo:>5}" + "".join(
            f"{'-' if v is None else f'{v:.2f}':>8}{show(None if v is None else v - jp):>7}" for v in at.values()))
    ok = [c for c in classics if c["webp_over_cap"] == 0]
    okj = [c for c in classics if c["jpeg444_over_cap"] == 0]
    bd_webp = {name: bd_rate([c["webp_bytes"] for c in ok], [c["webp_psnr"] for c in ok], *curve(name))
               if curves[name] else None for name in compared}
    bd_jpeg = {name: bd_rate([c["jpeg444_bytes"] for c in okj], [c["jpeg444_psnr"] for c in okj], *curve(name))
               if curves[name] else None for name in compared}
    print("BD-rate against WebP | JPEG 4:4:4 (caps where no image is over):")
    for name in compared:
        print(f"  {name:<34} {fmt(bd_webp[name])} | {fmt(bd_jpeg[name])}")
    print(f"total {time.perf_counter() - began:.0f} s")
    strip = lambda r: {k: v for k, v in r.items() if k != "_set"}
    settings = {"images": args.images, "size": size,
                "crops": f"Kodak photos {args.photos} shrunk 4x ({source.replace(str(KODAK), 'KODAK')}), "
                         f"{size}x{size}, seed 0",
                "steps": args.steps, "lambda": preset.rd_lambda, "image_steps": preset.image_steps,
                "qat_steps": args.qat, "rate_weight": args.rate,
                "archs": args.archs, "ablation_arch": arch_text, "lambdas": args.lams, "preset_init": families[0],
                "inits": [init_file(f, a, size).name for f, a in learned_fits], "no_init_at_this_size": missing,
                "seconds": round(time.perf_counter() - began, 1)}
    results = {"ablation": [strip(r) for r in rows], "curves": {k: [strip(r) for r in v] for k, v in curves.items()},
               "preset_curve": preset_curve, "lambda_sweep": [strip(r) for r in lam_sweep],
               "bd_rate_vs_today_pct": bd_today, "bd_rate_vs_webp_pct": bd_webp, "bd_rate_vs_jpeg444_pct": bd_jpeg,
               "bd_function": "local (benchmarks/compact_store.py: bd_rate)", "classic": classics,
               "groups": len(groups(arch))}
    doc = results_document("compact_store", __doc__.split("\n\n")[0], settings, results)
    if not args.quick:
        write_results(out, doc)
    return doc


if __name__ == "__main__":
    main()
